/* Envoy's StringMatcher at match time, and the RE2-like regexes behind safe_regex, shared by the
 * router and RBAC: exact / prefix / suffix / contains (optionally case-insensitive, the pattern
 * stored lower-cased) and full-match regexes on PCRE2 with a per-thread match block. */
#ifndef RS_STRMATCH_H
#define RS_STRMATCH_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rs_sm_kind { RS_SM_EXACT, RS_SM_PREFIX, RS_SM_SUFFIX, RS_SM_CONTAINS, RS_SM_REGEX };

struct rs_strmatch {
    uint8_t kind; /* enum rs_sm_kind */
    bool icase;   /* pattern stored lower-cased */
    uint32_t len;
    const char *s;
    const pcre2_code *re; /* RS_SM_REGEX: a full-match regex (rs_regex_compile) */
};

/* RE2's semantics on PCRE2: `$` only at the very end, no \C; `full` anchors both ends (safe_regex
 * matches the whole value). JIT-compiled when possible. NULL with a message in err. */
pcre2_code *rs_regex_compile(const char *pattern, bool full, char *err, size_t errlen);

/* 1 match, 0 no match, -1 PCRE2 could not decide (a match limit). */
int rs_regex_match(const pcre2_code *re, const char *s, size_t n);
/* The calling thread's match block (capture groups for substitutions); freed by
 * rs_strmatch_thread_cleanup. */
pcre2_match_data *rs_regex_match_data(void);
void rs_strmatch_thread_cleanup(void);

/* Matches v against m; a regex PCRE2 cannot decide counts as no match and sets *undecided
 * (if given). */
bool rs_strmatch(const struct rs_strmatch *m, const char *v, size_t n, bool *undecided);

static inline unsigned char rs_lc(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
}

/* absl::SimpleAtoi on an int64, as HeaderMatcher.range_match reads a header value. */
bool rs_parse_int64(const char *s, size_t n, int64_t *out);

#endif
