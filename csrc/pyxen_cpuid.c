/* The CPUID instruction, executed directly (no /proc parsing). */
#include <cpuid.h>
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
