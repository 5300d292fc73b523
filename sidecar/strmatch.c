/* String matchers and full-match regexes shared by the router and RBAC (strmatch.h). */
#include "sidecar/strmatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local pcre2_match_data *tl_md;

pcre2_match_data *rs_regex_match_data(void)
{
    if (!tl_md) {
        tl_md = pcre2_match_data_create(32, NULL);
        if (!tl_md) abort(); /* a few hundred bytes, once per thread */
    }
    return tl_md;
}

void rs_strmatch_thread_cleanup(void)
{
    pcre2_match_data_free(tl_md);
    tl_md = NULL;
}

pcre2_code *rs_regex_compile(const char *pattern, bool full, char *err, size_t errlen)
{
    uint32_t opts = PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C;
    if (full) opts |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, strlen(pattern), opts, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)off);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return re;
}

int rs_regex_match(const pcre2_code *re, const char *s, size_t n)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, rs_regex_match_data(), NULL);
    if (rc >= 0) return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static bool eq(const char *v, const char *pat, size_t n, bool icase)
{
    if (!icase) return memcmp(v, pat, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (rs_lc((unsigned char)v[i]) != (unsigned char)pat[i]) return false;
    return true;
}

bool rs_strmatch(const struct rs_strmatch *m, const char *v, size_t n, bool *undecided)
{
    switch (m->kind) {
    case RS_SM_EXACT:
        return n == m->len && eq(v, m->s, n, m->icase);
    case RS_SM_PREFIX:
        return n >= m->len && eq(v, m->s, m->len, m->icase);
    case RS_SM_SUFFIX:
        return n >= m->len && eq(v + n - m->len, m->s, m->len, m->icase);
    case RS_SM_CONTAINS:
        if (!m->icase) return memmem(v, n, m->s, m->len) != NULL;
        for (size_t i = 0; i + m->len <= n; i++)
            if (eq(v + i, m->s, m->len, true)) return true;
        return false;
    default: {
        int rc = rs_regex_match(m->re, v, n);
        if (rc < 0 && undecided) *undecided = true;
        return rc > 0;
    }
    }
}

bool rs_parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n) return false;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}
