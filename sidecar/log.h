/* Logging: Envoy's levels and line shape ("[time][thread][level] message") to stderr. */
#ifndef RS_LOG_H
#define RS_LOG_H

#include <stdarg.h>

enum rs_log_level {
    RS_LOG_TRACE,
    RS_LOG_DEBUG,
    RS_LOG_INFO,
    RS_LOG_WARN,
    RS_LOG_ERROR,
    RS_LOG_CRITICAL,
    RS_LOG_OFF
};

extern enum rs_log_level rs_log_min;

/* Parses an Envoy level name (trace, debug, info, warning/warn, error, critical, off); -1 if
 * unknown. */
int rs_log_parse_level(const char *name);

void rs_log_write(enum rs_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define rs_log(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= rs_log_min) rs_log_write((lvl), __VA_ARGS__);                                 \
    } while (0)
#define rs_debug(...) rs_log(RS_LOG_DEBUG, __VA_ARGS__)
#define rs_info(...) rs_log(RS_LOG_INFO, __VA_ARGS__)
#define rs_warn(...) rs_log(RS_LOG_WARN, __VA_ARGS__)
#define rs_error(...) rs_log(RS_LOG_ERROR, __VA_ARGS__)

#endif
