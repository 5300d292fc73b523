/* A parsed YAML or JSON document as a plain tree, so one loader maps both onto messages.
 * Internal to xds/. Every node and string lives in the document's arena, freed at once. */
#ifndef XDS_DOC_H
#define XDS_DOC_H

#include <jansson.h>
#include <stddef.h>

enum xds_node_kind { XDS_NODE_SCALAR, XDS_NODE_MAP, XDS_NODE_SEQ };

/* Plain scalars (YAML unquoted, JSON numbers/true/false/null) are typed by the field they fill;
 * quoted ones (YAML quoted, JSON strings) are always strings. */
enum xds_scalar_style { XDS_PLAIN, XDS_QUOTED };

struct xds_node {
    enum xds_node_kind kind;
    enum xds_scalar_style style;
    unsigned line, col;     /* 1-based; 0 when the parser gives no position (JSON) */
    const char *text;       /* scalar text, NUL-terminated */
    size_t len;             /* scalar length (may contain NULs from escapes) */
    struct xds_node **kids; /* MAP: key0, value0, key1, value1...; SEQ: items */
    size_t n_kids;
};

struct xds_doc;

/* Parse text; on error NULL with a message (with line and column for YAML) in err. */
struct xds_doc *xds_doc_parse_yaml(const char *text, size_t len, char *err, size_t errlen);
struct xds_doc *xds_doc_parse_json(const char *text, size_t len, char *err, size_t errlen);

/* Build a document from a jansson value (used to load a TypedStruct's Struct). */
struct xds_doc *xds_doc_from_json(const json_t *v);

const struct xds_node *xds_doc_root(const struct xds_doc *doc);
/* Number of nodes parsed (aliases not expanded). */
size_t xds_doc_node_count(const struct xds_doc *doc);
void xds_doc_free(struct xds_doc *doc);

#endif
