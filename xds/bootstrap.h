/* The Envoy v3 bootstrap: loading it from a file (-c) and a string (--config-yaml), and layering
 * the string over the file as Envoy does. */
#ifndef XDS_BOOTSTRAP_H
#define XDS_BOOTSTRAP_H

#include <stddef.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "xds/pbload.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap xds_bootstrap;

/* Loads a bootstrap file: JSON if the name ends in ".json", YAML otherwise (as Envoy decides).
 * flags: XDS_LOAD_ALLOW_UNKNOWN. Returns the message (free with xds_bootstrap_free) or NULL with
 * a message in err. */
xds_bootstrap *xds_bootstrap_load_file(const char *path, unsigned flags, char *err, size_t errlen);

/* Loads a bootstrap from YAML (or JSON) text, as given to --config-yaml. */
xds_bootstrap *xds_bootstrap_load_yaml_string(const char *yaml, unsigned flags, char *err,
                                              size_t errlen);

/* Envoy's -c FILE plus --config-yaml TEXT: either may be NULL (not both); the text is merged over
 * the file with protobuf merge semantics. */
xds_bootstrap *xds_bootstrap_load(const char *path, const char *config_yaml, unsigned flags,
                                  char *err, size_t errlen);

/* Merges src over dst (scalars overwrite, repeated fields append, messages merge). */
void xds_bootstrap_merge(xds_bootstrap *dst, const xds_bootstrap *src);

void xds_bootstrap_free(xds_bootstrap *b);

#endif
