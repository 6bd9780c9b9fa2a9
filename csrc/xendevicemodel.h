/* libxendevicemodel (xendevicemodel.h + xen/hvm/dm_op.h, hvm_op.h, ioreq.h), trimmed to what
 * pyxen.devicemodel binds. Unchanged between Xen 4.17 and 4.20. domid_t comes from
 * xenctrl.h, xen_pfn_t from xenguest.h, evtchn_port_t from xenevtchn.h. */
typedef uint16_t ioservid_t;
typedef struct xendevicemodel_handle xendevicemodel_handle;

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger,
                                           unsigned int open_flags);
int xendevicemodel_close(xendevicemodel_handle *dmod);

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
                                       int handle_bufioreq, ioservid_t *id);
int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod, domid_t domid,
                                         ioservid_t id, xen_pfn_t *ioreq_gfn,
                                         xen_pfn_t *bufioreq_gfn,
                                         evtchn_port_t *bufioreq_port);
int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
                                                ioservid_t id, int is_mmio, uint64_t start,
                                                uint64_t end);
int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *dmod,
                                                    domid_t domid, ioservid_t id,
                                                    int is_mmio, uint64_t start,
                                                    uint64_t end);
int xendevicemodel_map_pcidev_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
                                              ioservid_t id, uint16_t segment, uint8_t bus,
                                              uint8_t device, uint8_t function);
int xendevicemodel_unmap_pcidev_from_ioreq_server(xendevicemodel_handle *dmod,
                                                  domid_t domid, ioservid_t id,
                                                  uint16_t segment, uint8_t bus,
                                                  uint8_t device, uint8_t function);
int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
                                        ioservid_t id);
int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod, domid_t domid,
                                          ioservid_t id, int enabled);

int xendevicemodel_set_pci_intx_level(xendevicemodel_handle *dmod, domid_t domid,
                                      uint16_t segment, uint8_t bus, uint8_t device,
                                      uint8_t intx, unsigned int level);
int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *dmod, domid_t domid,
                                     uint8_t irq, unsigned int level);
int xendevicemodel_set_irq_level(xendevicemodel_handle *dmod, domid_t domid,
                                 unsigned int irq, unsigned int level);
int xendevicemodel_set_pci_link_route(xendevicemodel_handle *dmod, domid_t domid,
                                      uint8_t link, uint8_t irq);
int xendevicemodel_inject_msi(xendevicemodel_handle *dmod, domid_t domid, uint64_t msi_addr,
                              uint32_t msi_data);
int xendevicemodel_track_dirty_vram(xendevicemodel_handle *dmod, domid_t domid,
                                    uint64_t first_pfn, uint32_t nr,
                                    unsigned long *dirty_bitmap);
int xendevicemodel_modified_memory(xendevicemodel_handle *dmod, domid_t domid,
                                   uint64_t first_pfn, uint32_t nr);
int xendevicemodel_shutdown(xendevicemodel_handle *dmod, domid_t domid, unsigned int reason);
int xendevicemodel_relocate_memory(xendevicemodel_handle *dmod, domid_t domid, uint32_t size,
                                   uint64_t src_gfn, uint64_t dst_gfn);
int xendevicemodel_pin_memory_cacheattr(xendevicemodel_handle *dmod, domid_t domid,
                                        uint64_t start, uint64_t end, uint32_t type);
int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid, unsigned int *vcpus);
int xendevicemodel_restrict(xendevicemodel_handle *dmod, domid_t domid);

#define HVM_IOREQSRV_BUFIOREQ_OFF ...
#define HVM_IOREQSRV_BUFIOREQ_LEGACY ...
#define HVM_IOREQSRV_BUFIOREQ_ATOMIC ...
#define XEN_DMOP_MEM_CACHEATTR_UC ...
#define XEN_DMOP_MEM_CACHEATTR_WC ...
#define XEN_DMOP_MEM_CACHEATTR_WT ...
#define XEN_DMOP_MEM_CACHEATTR_WP ...
#define XEN_DMOP_MEM_CACHEATTR_WB ...
#define XEN_DMOP_MEM_CACHEATTR_UCM ...
#define XENMEM_resource_ioreq_server_frame_bufioreq ...

/* xen/hvm/ioreq.h: one vCPU's request slot in an ioreq server's page. Declared as the
 * header has it; cffi refuses '...;' with bitfields, so it checks this layout against the
 * compiler's at build time instead. */
struct ioreq {
    uint64_t addr;
    uint64_t data;
    uint32_t count;
    uint32_t size;
    uint32_t vp_eport;
    uint16_t _pad0;
    uint8_t state:4;
    uint8_t data_is_ptr:1;
    uint8_t dir:1;
    uint8_t df:1;
    uint8_t _pad1:1;
    uint8_t type;
};
typedef struct ioreq ioreq_t;
struct shared_iopage {
    struct ioreq vcpu_ioreq[1];
};
typedef struct shared_iopage shared_iopage_t;
#define IOREQ_READ ...
#define IOREQ_WRITE ...
#define STATE_IOREQ_NONE ...
#define STATE_IOREQ_READY ...
#define STATE_IOREQ_INPROCESS ...
#define STATE_IORESP_READY ...
#define IOREQ_TYPE_PIO ...
#define IOREQ_TYPE_COPY ...
#define IOREQ_TYPE_PCI_CONFIG ...
#define IOREQ_TYPE_TIMEOFFSET ...
#define IOREQ_TYPE_INVALIDATE ...

/* pyxen_xen.c: take a vCPU's request (state READY → INPROCESS, read barrier, copy) and
 * answer it (data, write barrier, state IORESP_READY), as qemu's xen-hvm does */
static const unsigned int pyxen_ioreq_frame;  /* XENMEM_resource_ioreq_server_frame_ioreq(0) */
int pyxen_ioreq_take(void *page, unsigned int vcpu, ioreq_t *out);
void pyxen_ioreq_respond(void *page, unsigned int vcpu, uint64_t data);
