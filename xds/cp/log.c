/* ringside-cp's stderr log. */
#include "xds/cp/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum cp_log_level min_level = CP_LOG_INFO;

void cp_log_set_level(enum cp_log_level level)
{
    min_level = level;
}

int cp_log_parse_level(const char *name)
{
    static const struct {
        const char *name;
        enum cp_log_level level;
    } names[] = {{"trace", CP_LOG_DEBUG},    {"debug", CP_LOG_DEBUG},  {"info", CP_LOG_INFO},
                 {"warn", CP_LOG_WARN},      {"warning", CP_LOG_WARN}, {"error", CP_LOG_ERROR},
                 {"critical", CP_LOG_ERROR}, {"off", CP_LOG_OFF}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) return (int)names[i].level;
    return -1;
}

void cp_log(enum cp_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warning", "error"};
    if (level < min_level || level >= CP_LOG_OFF) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "[%04d-%02d-%02d %02d:%02d:%02d.%03ld] [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from a test's several processes do not interleave. */
    fprintf(stderr, "%s\n", line);
}
