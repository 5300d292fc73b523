/* A minimal unit-test harness: TEST() functions registered by the RUN_TESTS list, CHECK()
 * assertions that report file:line and keep going, and the closing line "N passed, N failed"
 * that CI reads. */
#ifndef RS_TEST_H
#define RS_TEST_H

#include <stdio.h>
#include <string.h>

static int rs_test_failures __attribute__((unused));
static int rs_test_current_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            rs_test_current_failed = 1;                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a,    \
                    #b, va_, vb_);                                                                 \
            rs_test_current_failed = 1;                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fprintf(stderr, "  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,    \
                    #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                           \
            rs_test_current_failed = 1;                                                            \
        }                                                                                          \
    } while (0)

typedef void (*rs_test_fn)(void);
struct rs_test_case {
    const char *name;
    rs_test_fn fn;
};

#define TEST_CASE(fn)                                                                              \
    {                                                                                              \
#fn, fn                                                                                    \
    }

static inline int rs_run_tests(const struct rs_test_case *cases, int n)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        rs_test_current_failed = 0;
        cases[i].fn();
        if (rs_test_current_failed) {
            failed++;
            fprintf(stderr, "FAIL %s\n", cases[i].name);
        } else {
            passed++;
            printf("ok   %s\n", cases[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define RUN_TESTS(...)                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        static const struct rs_test_case cases_[] = {__VA_ARGS__};                                 \
        return rs_run_tests(cases_, (int)(sizeof cases_ / sizeof cases_[0]));                      \
    }

#endif
