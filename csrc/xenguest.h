/* libxenguest (xenguest.h), trimmed: the domain builder's entry points.
 * struct xc_dom_image is declared partially ("...;"): the C compiler fixes the offsets of
 * the fields pyxen reads and writes. */
typedef int... xen_pfn_t;
typedef int... xen_paddr_t;

/* a firmware blob handed to hvmloader (SeaBIOS/OVMF as system firmware, ACPI, SMBIOS) */
struct xc_hvm_firmware_module {
    uint8_t  *data;
    uint32_t  length;
    uint64_t  guest_addr_out;
};
/* the HVM special pages libxenguest places below 1 MiB (store, console, ioreq, ...):
 * a PVH guest's memory map marks them reserved, as libxl does */
#define X86_HVM_NR_SPECIAL_PAGES ...
#define X86_HVM_END_SPECIAL_REGION ...
/* how many ACPI blobs xc_dom_image.acpi_modules holds (the first is the RSDP) */
#define MAX_ACPI_MODULES ...
/* values of xc_dom_image.container_type (an anonymous enum in xenguest.h) */
#define XC_DOM_PV_CONTAINER ...
#define XC_DOM_HVM_CONTAINER ...

struct xc_dom_image {
    /* misc xen domain config stuff */
    unsigned long flags;
    unsigned int console_evtchn;
    unsigned int xenstore_evtchn;
    uint32_t console_domid;
    uint32_t xenstore_domid;
    uint32_t guest_domid;
    int claim_enabled;
    /* memory layout, filled in by the build */
    xen_pfn_t console_pfn;
    xen_pfn_t xenstore_pfn;
    xen_pfn_t total_pages;
    const char *guest_type;
    /* Number of vCPUs */
    unsigned int max_vcpus;
    /* Container type (HVM or PV): an anonymous enum, declared by its size */
    int container_type;
    /* HVM specific fields */
    xen_pfn_t target_pages;
    xen_paddr_t mmio_start;
    xen_paddr_t mmio_size;
    xen_paddr_t lowmem_end;
    xen_paddr_t highmem_end;
    xen_pfn_t vga_hole_size;
    bool device_model;
    struct xc_hvm_firmware_module system_firmware_module;
    /* PVH: ACPI tables libxenguest copies into the guest (module 0 is the RSDP, whose
     * address goes into the start_info's rsdp_paddr) */
    struct xc_hvm_firmware_module acpi_modules[...];   /* MAX_ACPI_MODULES */
    /* PVH: the memory map libxenguest copies into the start_info page */
    struct e820entry *e820;
    unsigned int e820_entries;
    ...;
};

struct xc_dom_image *xc_dom_allocate(xc_interface *xch,
                                     const char *cmdline, const char *features);
void xc_dom_release(struct xc_dom_image *dom);
int xc_dom_mem_init(struct xc_dom_image *dom, unsigned int mem_mb);
int xc_dom_kernel_file(struct xc_dom_image *dom, const char *filename);
int xc_dom_kernel_mem(struct xc_dom_image *dom, const void *mem,
                      size_t memsize);
int xc_dom_module_file(struct xc_dom_image *dom, const char *filename,
                       const char *cmdline);
int xc_dom_parse_image(struct xc_dom_image *dom);
int xc_dom_build_image(struct xc_dom_image *dom);
int xc_dom_boot_xen_init(struct xc_dom_image *dom, xc_interface *xch,
                         uint32_t domid);
int xc_dom_boot_mem_init(struct xc_dom_image *dom);
int xc_dom_boot_image(struct xc_dom_image *dom);
int xc_dom_gnttab_init(struct xc_dom_image *dom);
/* what the parsed kernel says about itself: its GUEST_OS note, its supported features */
char *xc_dom_guest_os(struct xc_dom_image *dom);
bool xc_dom_feature_get(struct xc_dom_image *dom, unsigned int nr);
#define XENFEAT_linux_rsdp_unrestricted ...
bool xc_dom_translated(const struct xc_dom_image *dom);
/* static inline in xenguest.h: the guest frame -> machine frame of an x86 PV guest */
xen_pfn_t xc_dom_p2m(struct xc_dom_image *dom, xen_pfn_t pfn);

/* libxenctrl calls only the domain builder needs (declared here to keep xenctrl.h lean) */
int xc_domain_set_memmap_limit(xc_interface *xch, uint32_t domid,
                               unsigned long map_limitkb);
