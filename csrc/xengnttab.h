/* libxengnttab (xengnttab.h + xen/grant_table.h): grant mapping and copy (gntdev) and
 * grant sharing (gntshr, gntalloc), trimmed to what pyxen.gnttab binds.
 * Unchanged between Xen 4.17 and 4.20. evtchn_port_t comes from xenevtchn.h. */
typedef struct xengntdev_handle xengnttab_handle;
typedef struct xengntdev_handle xengntshr_handle;

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags);
int xengnttab_close(xengnttab_handle *xgt);
int xengnttab_fd(xengnttab_handle *xgt);
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot);
void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t *domids,
                               uint32_t *refs, int prot);
void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
                                      uint32_t *refs, int prot);
void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid, uint32_t ref,
                                     int prot, uint32_t notify_offset,
                                     evtchn_port_t notify_port);
int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count);
int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants);

/* grant copy: layouts from the compiler */
union xengnttab_copy_ptr {
    void *virt;
    struct {
        uint32_t ref;
        uint16_t offset;
        uint16_t domid;
    } foreign;
};
struct xengnttab_grant_copy_segment {
    union xengnttab_copy_ptr source, dest;
    uint16_t len;
    uint16_t flags;
    int16_t status;
    ...;
};
typedef struct xengnttab_grant_copy_segment xengnttab_grant_copy_segment_t;
int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
                         xengnttab_grant_copy_segment_t *segs);
#define GNTCOPY_source_gref ...
#define GNTCOPY_dest_gref ...
#define GNTST_okay ...
#define GNTST_general_error ...
#define GNTST_bad_domain ...
#define GNTST_bad_gntref ...
#define GNTST_bad_handle ...
#define GNTST_bad_virt_addr ...
#define GNTST_bad_dev_addr ...
#define GNTST_no_device_space ...
#define GNTST_permission_denied ...
#define GNTST_bad_page ...
#define GNTST_bad_copy_arg ...
#define GNTST_address_too_big ...
#define GNTST_eagain ...

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger, unsigned open_flags);
int xengntshr_close(xengntshr_handle *xgs);
int xengntshr_fd(xengntshr_handle *xgs);
void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs,
                            int writable);
void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid, uint32_t *ref,
                                  int writable, uint32_t notify_offset,
                                  evtchn_port_t notify_port);
int xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count);

/* sys/mman.h: the protections the map calls take */
#define PROT_READ ...
#define PROT_WRITE ...
