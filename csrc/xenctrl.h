/* libxenctrl (xenctrl.h + xen/{version,sysctl,domctl}.h), trimmed to what pyxen binds.
 * Struct layouts end in "...;" so the C compiler, not this file, fixes offsets:
 * fields that moved between Xen releases cannot silently misread. */
typedef struct xenctrl_handle xc_interface;
typedef uint16_t domid_t;
typedef uint8_t xen_domain_handle_t[16];

enum xc_open_flags { XC_OPENFLAG_DUMMY = 1, XC_OPENFLAG_NON_REENTRANT = 2 };
xc_interface *xc_interface_open(xentoollog_logger *logger,
                                xentoollog_logger *dombuild_logger,
                                unsigned open_flags);
int xc_interface_close(xc_interface *xch);

/* errors */
enum xc_error_code {
    XC_ERROR_NONE = 0, XC_INTERNAL_ERROR = 1, XC_INVALID_KERNEL = 2, XC_INVALID_PARAM = 3,
    XC_OUT_OF_MEMORY = 4, ...
};
#define XC_MAX_ERROR_MSG_LEN ...
typedef struct xc_error {
    enum xc_error_code code;
    char message[...];
} xc_error;
const char *xc_error_code_to_desc(int code);
const char *xc_strerror(xc_interface *xch, int errcode);
const xc_error *xc_get_last_error(xc_interface *handle);
void xc_clear_last_error(xc_interface *xch);

/* version */
#define XENVER_version ...
#define XENVER_extraversion ...
#define XENVER_compile_info ...
#define XENVER_capabilities ...
#define XENVER_changeset ...
#define XENVER_commandline ...
#define XENVER_pagesize ...
typedef char xen_extraversion_t[16];
typedef char xen_capabilities_info_t[1024];
typedef char xen_changeset_info_t[64];
typedef char xen_commandline_t[1024];
typedef struct xen_compile_info {
    char compiler[64];
    char compile_by[16];
    char compile_domain[32];
    char compile_date[32];
} xen_compile_info_t;
int xc_version(xc_interface *xch, int cmd, void *arg);

/* host */
#define XEN_SYSCTL_PHYSCAP_hvm ...
#define XEN_SYSCTL_PHYSCAP_pv ...
#define XEN_SYSCTL_PHYSCAP_directio ...
#define XEN_SYSCTL_PHYSCAP_hap ...
#define XEN_SYSCTL_PHYSCAP_shadow ...
#define XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share ...
#define XEN_SYSCTL_PHYSCAP_vmtrace ...
#define XEN_SYSCTL_PHYSCAP_vpmu ...
#define XEN_SYSCTL_PHYSCAP_gnttab_v1 ...
#define XEN_SYSCTL_PHYSCAP_gnttab_v2 ...
typedef struct xen_sysctl_physinfo {
    uint32_t threads_per_core;
    uint32_t cores_per_socket;
    uint32_t nr_cpus;
    uint32_t max_cpu_id;
    uint32_t nr_nodes;
    uint32_t max_node_id;
    uint32_t cpu_khz;
    uint32_t capabilities;
    uint32_t arch_capabilities;
    uint64_t total_pages;
    uint64_t free_pages;
    uint64_t scrub_pages;
    uint64_t outstanding_pages;
    uint64_t max_mfn;
    uint32_t hw_cap[8];
    ...;
} xc_physinfo_t;
int xc_physinfo(xc_interface *xch, xc_physinfo_t *info);
int xc_sched_id(xc_interface *xch, int *sched_id);
int xc_get_max_cpus(xc_interface *xch);
int xc_get_online_cpus(xc_interface *xch);
int xc_get_max_nodes(xc_interface *xch);
int xc_availheap(xc_interface *xch, int min_width, int max_width, int node,
                 uint64_t *bytes);

/* domains */
#define XEN_DOMINF_dying ...
#define XEN_DOMINF_hvm_guest ...
#define XEN_DOMINF_shutdown ...
#define XEN_DOMINF_paused ...
#define XEN_DOMINF_blocked ...
#define XEN_DOMINF_running ...
#define XEN_DOMINF_debugged ...
#define XEN_DOMINF_xs_domain ...
#define XEN_DOMINF_hap ...
#define XEN_DOMINF_shutdownmask ...
#define XEN_DOMINF_shutdownshift ...
#define XEN_INVALID_MAX_VCPU_ID ...
typedef struct xen_domctl_getdomaininfo {
    domid_t domain;
    uint32_t flags;
    uint64_t tot_pages;
    uint64_t max_pages;
    uint64_t outstanding_pages;
    uint64_t shr_pages;
    uint64_t paged_pages;
    uint64_t shared_info_frame;
    uint64_t cpu_time;
    uint32_t nr_online_vcpus;
    uint32_t max_vcpu_id;
    uint32_t ssidref;
    xen_domain_handle_t handle;
    uint32_t cpupool;
    ...;
} xc_domaininfo_t;
int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
                          unsigned int max_domains, xc_domaininfo_t *info);
#if XEN >= 4.18
int xc_domain_getinfo_single(xc_interface *xch, uint32_t domid, xc_domaininfo_t *info);
#endif

/* domain ids (xen/xen.h) */
#define DOMID_FIRST_RESERVED ...
#define DOMID_SELF ...
#define DOMID_INVALID ...

/* scheduler ids (xen/domctl.h) */
#define XEN_SCHEDULER_CREDIT ...
#define XEN_SCHEDULER_CREDIT2 ...
#define XEN_SCHEDULER_ARINC653 ...
#define XEN_SCHEDULER_RTDS ...
#define XEN_SCHEDULER_NULL ...

/* shutdown reasons (xen/sched.h) */
#define SHUTDOWN_poweroff ...
#define SHUTDOWN_reboot ...
#define SHUTDOWN_suspend ...
#define SHUTDOWN_crash ...
#define SHUTDOWN_watchdog ...
#define SHUTDOWN_soft_reset ...

/* domain creation (xen/domctl.h, xen/arch-x86/xen.h) */
#define XEN_DOMCTL_CDF_hvm ...
#define XEN_DOMCTL_CDF_hap ...
#define XEN_DOMCTL_CDF_s3_integrity ...
#define XEN_DOMCTL_CDF_oos_off ...
#define XEN_DOMCTL_CDF_xs_domain ...
#define XEN_DOMCTL_CDF_iommu ...
#define XEN_DOMCTL_CDF_nested_virt ...
#define XEN_DOMCTL_CDF_vpmu ...
#define XEN_DOMCTL_GRANT_version_mask ...
#define XEN_X86_EMU_LAPIC ...
#define XEN_X86_EMU_VPCI ...
#define XEN_X86_EMU_ALL ...
struct xen_arch_domainconfig {
    uint32_t emulation_flags;
    ...;
};
struct xen_domctl_createdomain {
    uint32_t ssidref;
    xen_domain_handle_t handle;
    uint32_t flags;
    uint32_t iommu_opts;
    uint32_t max_vcpus;
    uint32_t max_evtchn_port;
    int32_t max_grant_frames;
    int32_t max_maptrack_frames;
    uint32_t grant_opts;
    uint32_t vmtrace_size;
    uint32_t cpupool_id;
    struct xen_arch_domainconfig arch;
    ...;
};
int xc_domain_create(xc_interface *xch, uint32_t *pdomid,
                     struct xen_domctl_createdomain *config);
int xc_domain_max_vcpus(xc_interface *xch, uint32_t domid, unsigned int max);
int xc_domain_pause(xc_interface *xch, uint32_t domid);
int xc_domain_unpause(xc_interface *xch, uint32_t domid);
int xc_domain_destroy(xc_interface *xch, uint32_t domid);
int xc_domain_shutdown(xc_interface *xch, uint32_t domid, int reason);
int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb);

/* vCPUs */
typedef uint8_t *xc_cpumap_t;
int xc_get_cpumap_size(xc_interface *xch);
#define XEN_VCPUAFFINITY_HARD ...
#define XEN_VCPUAFFINITY_SOFT ...
#define XEN_VCPUAFFINITY_FORCE ...
int xc_vcpu_setaffinity(xc_interface *xch, uint32_t domid, int vcpu,
                        xc_cpumap_t cpumap_hard_inout, xc_cpumap_t cpumap_soft_inout,
                        uint32_t flags);
int xc_vcpu_getaffinity(xc_interface *xch, uint32_t domid, int vcpu,
                        xc_cpumap_t cpumap_hard, xc_cpumap_t cpumap_soft, uint32_t flags);
struct xen_domctl_getvcpuinfo {
    uint32_t vcpu;
    uint8_t online;
    uint8_t blocked;
    uint8_t running;
    uint64_t cpu_time;
    uint32_t cpu;
    ...;
};
typedef struct xen_domctl_getvcpuinfo xc_vcpuinfo_t;
int xc_vcpu_getinfo(xc_interface *xch, uint32_t domid, uint32_t vcpu, xc_vcpuinfo_t *info);

/* event channels */
typedef int xc_evtchn_port_or_error_t;
xc_evtchn_port_or_error_t xc_evtchn_alloc_unbound(xc_interface *xch, uint32_t dom,
                                                  uint32_t remote_dom);
