/* ringside-cp's log: one line per event on stderr, "[time] [level] message", filtered by the
 * level set with -l. */
#ifndef XDS_CP_LOG_H
#define XDS_CP_LOG_H

enum cp_log_level { CP_LOG_DEBUG, CP_LOG_INFO, CP_LOG_WARN, CP_LOG_ERROR, CP_LOG_OFF };

/* Sets the minimum level written (default info). */
void cp_log_set_level(enum cp_log_level level);

/* Parses "debug", "info", "warn"/"warning", "error", "off" (also "trace" = debug, "critical" =
 * error, as Envoy's -l accepts); -1 if unknown. */
int cp_log_parse_level(const char *name);

void cp_log(enum cp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
