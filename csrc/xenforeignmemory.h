/* libxenforeignmemory (xenforeignmemory.h + xen/memory.h), trimmed to what
 * pyxen.foreignmemory binds. Unchanged between Xen 4.17 and 4.20. xen_pfn_t comes from
 * xenguest.h, domid_t from xenctrl.h, PROT_* from xengnttab.h. */
typedef struct xenforeignmemory_handle xenforeignmemory_handle;
typedef struct xenforeignmemory_resource_handle xenforeignmemory_resource_handle;

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger,
                                               unsigned open_flags);
int xenforeignmemory_close(xenforeignmemory_handle *fmem);
void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot,
                           size_t pages, const xen_pfn_t arr[], int err[]);
int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages);
int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid);
xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
    xenforeignmemory_handle *fmem, domid_t domid, unsigned int type, unsigned int id,
    unsigned long frame, unsigned long nr_frames, void **paddr, int prot, int flags);
int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem,
                                    xenforeignmemory_resource_handle *fres);
int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem, domid_t domid,
                                   unsigned int type, unsigned int id, size_t *size);

#define XENMEM_resource_ioreq_server ...
#define XENMEM_resource_grant_table ...
#define XENMEM_resource_vmtrace_buf ...
#define XENMEM_resource_grant_table_id_shared ...
#define XENMEM_resource_grant_table_id_status ...
