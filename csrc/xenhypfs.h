/* libxenhypfs (xenhypfs.h), trimmed: the hypervisor file system (Xen >= 4.14), read and
 * listed through the __HYPERVISOR_hypfs_op hypercall. */
typedef struct xenhypfs_handle xenhypfs_handle;

enum xenhypfs_type {
    xenhypfs_type_dir,
    xenhypfs_type_blob,
    xenhypfs_type_string,
    xenhypfs_type_uint,
    xenhypfs_type_int,
    xenhypfs_type_bool,
};

enum xenhypfs_encoding {
    xenhypfs_enc_plain,
    xenhypfs_enc_gzip
};

struct xenhypfs_dirent {
    char *name;
    size_t size;
    unsigned short type;
    unsigned short encoding;
    unsigned int flags;
    ...;
};
#define XENHYPFS_FLAG_WRITABLE ...

xenhypfs_handle *xenhypfs_open(struct xentoollog_logger *logger, unsigned int open_flags);
int xenhypfs_close(xenhypfs_handle *fshdl);
/* the raw contents (malloc'd) and its dirent (malloc'd), NULL with errno on failure */
void *xenhypfs_read_raw(xenhypfs_handle *fshdl, const char *path,
                        struct xenhypfs_dirent **dirent);
/* the contents as text (malloc'd): values printed, a directory listed */
char *xenhypfs_read(xenhypfs_handle *fshdl, const char *path);
/* a directory's entries (one malloc'd block, names included) */
struct xenhypfs_dirent *xenhypfs_readdir(xenhypfs_handle *fshdl, const char *path,
                                         unsigned int *num_entries);
int xenhypfs_write(xenhypfs_handle *fshdl, const char *path, const char *val);
