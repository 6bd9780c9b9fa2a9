/* pyxen's own CPUID/XGETBV helper: no Xen dependency (module pyxen._cpuid). */
void pyxen_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int out[4]);
int pyxen_cpuid_supported(void);
