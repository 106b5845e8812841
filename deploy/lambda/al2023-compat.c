/*
 * Linked into the Lambda `bootstrap` by scripts/package-lambda.sh (never into the image).
 *
 * Linking on Debian 12 (glibc 2.36, gcc 12) binds three symbols to versions that Amazon Linux 2023
 * (glibc 2.34, gcc 11) does not have: hypot and hypotf at GLIBC_2.35 (a newer version of the same
 * functions), and std::condition_variable::wait(unique_lock<mutex>&) at GLIBCXX_3.4.30. The
 * binary would then fail to load on provided.al2023 ("version `GLIBC_2.35' not found").
 *
 * Defining the three names here makes every reference in the link bind to these definitions,
 * which call the older versions both systems have (libm and libstdc++ keep them for binaries
 * linked before the change; the callers use them the same way). scripts/package-lambda.sh checks the
 * binary's version references; a new symbol that needs the same treatment shows up there by name.
 */
#if defined(__x86_64__)
#define GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define GLIBC_BASE "GLIBC_2.17"
#else
#error "Lambda runs x86_64 or arm64"
#endif

double medview_al2023_hypot(double, double);
float medview_al2023_hypotf(float, float);
void medview_al2023_condition_variable_wait(void *condition, void *lock);
__asm__(".symver medview_al2023_hypot, hypot@" GLIBC_BASE);
__asm__(".symver medview_al2023_hypotf, hypotf@" GLIBC_BASE);
__asm__(".symver medview_al2023_condition_variable_wait, _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE@GLIBCXX_3.4.11");

/* Hidden: the link binds the binary's calls to these, but they stay out of its dynamic symbol
   table. Exported (the Swift link exports everything), the versioned lookups these make at run
   time would find them again instead of libm's and libstdc++'s, and call themselves forever. */
#define LOCAL __attribute__((visibility("hidden")))

LOCAL double hypot(double x, double y) { return medview_al2023_hypot(x, y); }
LOCAL float hypotf(float x, float y) { return medview_al2023_hypotf(x, y); }
/* std::condition_variable::wait(std::unique_lock<std::mutex>&): `this` and the lock by address. */
LOCAL void _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE(void *condition, void *lock) {
    medview_al2023_condition_variable_wait(condition, lock);
}
