/* pyxen's own CPUID/XGETBV helper: no Xen dependency (module pyxen._cpuid). */
void pyxen_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int out[4]);
int pyxen_cpuid_supported(void);
/* CPUID through Xen's forced-emulation prefix (ud2; .ascii "xen"; cpuid): inside a Xen
 * PV domain this returns the hypervisor's (policy-filtered) view, Xen leaves included.
 * Anywhere else the prefix raises #UD: a temporary SIGILL handler catches it and the
 * call returns -1 (out untouched). 0 on success. */
int pyxen_cpuid_xen_pv(unsigned int leaf, unsigned int subleaf, unsigned int out[4]);
