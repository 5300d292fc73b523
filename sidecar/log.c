/* Logging to stderr in Envoy's default shape, one write() per line so workers' lines never mix. */
#include "sidecar/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum rs_log_level rs_log_min = RS_LOG_INFO;

static const char *const level_names[] = {"trace", "debug",    "info", "warning",
                                          "error", "critical", "off"};

int rs_log_parse_level(const char *name)
{
    if (strcmp(name, "warn") == 0) return RS_LOG_WARN;
    for (int i = 0; i <= RS_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

void rs_log_write(enum rs_log_level lvl, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "[%04d-%02d-%02d %02d:%02d:%02d.%03ld][%ld][%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, (long)syscall(SYS_gettid), level_names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
