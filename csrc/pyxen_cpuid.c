/* The CPUID instruction, executed directly (no /proc parsing). */
#include <cpuid.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include "pyxen_cpuid.h"

void pyxen_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int out[4])
{
#if defined(__x86_64__) || defined(__i386__)
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
#else
    out[0] = out[1] = out[2] = out[3] = 0;
#endif
}

int pyxen_cpuid_supported(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return 1;
#else
    return 0;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
static sigjmp_buf pyxen_ud_jmp;
static pthread_mutex_t pyxen_ud_lock = PTHREAD_MUTEX_INITIALIZER;

static void pyxen_on_sigill(int sig)
{
    (void)sig;
    siglongjmp(pyxen_ud_jmp, 1);
}
#endif

/* Xen's forced-emulation CPUID ("ud2; .ascii xen; cpuid") for n leaves at one subleaf,
 * under a SIGILL guard: returns -1 where that prefix is not emulated (not a PV guest). */
static int pyxen_xen_pv_cpuids(const unsigned int *leaves, unsigned int subleaf,
                               unsigned int n, unsigned int *out)
{
#if defined(__x86_64__) || defined(__i386__)
    struct sigaction sa, old;
    volatile int rc = -1;

    pthread_mutex_lock(&pyxen_ud_lock);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pyxen_on_sigill;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGILL, &sa, &old);
    if (sigsetjmp(pyxen_ud_jmp, 1) == 0) {
        unsigned int i;
        for (i = 0; i < n; i++) {
            unsigned int a = leaves[i], b = 0, c = subleaf, d = 0;
            __asm__ __volatile__(".byte 0x0f, 0x0b\n\t.ascii \"xen\"\n\tcpuid"
                                 : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
            out[4 * i] = a; out[4 * i + 1] = b; out[4 * i + 2] = c; out[4 * i + 3] = d;
        }
        rc = 0;
    }
    sigaction(SIGILL, &old, NULL);
    pthread_mutex_unlock(&pyxen_ud_lock);
    return rc;
#else
    (void)leaves; (void)subleaf; (void)n; (void)out;
    return -1;
#endif
}

int pyxen_cpuid_xen_pv_n(const unsigned int *leaves, unsigned int n, unsigned int *out)
{
    return pyxen_xen_pv_cpuids(leaves, 0, n, out);
}

int pyxen_cpuid_xen_pv(unsigned int leaf, unsigned int subleaf, unsigned int out[4])
{
    return pyxen_xen_pv_cpuids(&leaf, subleaf, 1, out);
}
