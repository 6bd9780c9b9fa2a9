/* libxenstore (xenstore.h, xenstore_lib.h), trimmed to what pyxen binds. */
struct xs_handle;
typedef uint32_t xs_transaction_t;

#define XBT_NULL 0
#define XS_OPEN_READONLY ...
#define XS_OPEN_SOCKETONLY ...
#define XS_UNWATCH_FILTER ...
#define XENSTORE_ABS_PATH_MAX ...
#define XENSTORE_REL_PATH_MAX ...
#define XENSTORE_PAYLOAD_MAX ...

struct xs_permissions {
    unsigned int id;
    unsigned int perms;
};
#define XS_PERM_NONE ...
#define XS_PERM_READ ...
#define XS_PERM_WRITE ...
#define XS_PERM_OWNER ...
enum xs_watch_type { XS_WATCH_PATH = 0, XS_WATCH_TOKEN };

struct xs_handle *xs_open(unsigned long flags);
void xs_close(struct xs_handle *xsh);

char **xs_directory(struct xs_handle *h, xs_transaction_t t,
                    const char *path, unsigned int *num);
void *xs_read(struct xs_handle *h, xs_transaction_t t,
              const char *path, unsigned int *len);
bool xs_write(struct xs_handle *h, xs_transaction_t t,
              const char *path, const void *data, unsigned int len);
bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path);
bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path);
bool xs_restrict(struct xs_handle *h, unsigned domid);
struct xs_permissions *xs_get_permissions(struct xs_handle *h, xs_transaction_t t,
                                          const char *path, unsigned int *num);
bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
                        struct xs_permissions *perms, unsigned int num_perms);

bool xs_watch(struct xs_handle *h, const char *path, const char *token);
int xs_fileno(struct xs_handle *h);
char **xs_check_watch(struct xs_handle *h);
char **xs_read_watch(struct xs_handle *h, unsigned int *num);
bool xs_unwatch(struct xs_handle *h, const char *path, const char *token);

xs_transaction_t xs_transaction_start(struct xs_handle *h);
bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort);

bool xs_introduce_domain(struct xs_handle *h, unsigned int domid,
                         unsigned long mfn, unsigned int eventchn);
bool xs_set_target(struct xs_handle *h, unsigned int domid, unsigned int target);
bool xs_resume_domain(struct xs_handle *h, unsigned int domid);
bool xs_release_domain(struct xs_handle *h, unsigned int domid);
char *xs_get_domain_path(struct xs_handle *h, unsigned int domid);
bool xs_path_is_subpath(const char *parent, const char *child);
bool xs_is_domain_introduced(struct xs_handle *h, unsigned int domid);
char *xs_control_command(struct xs_handle *h, const char *cmd, void *data, unsigned int len);

bool xs_strings_to_perms(struct xs_permissions *perms, unsigned int num, const char *strings);
const char *xs_daemon_socket(void);
const char *xs_daemon_socket_ro(void);

/* xen/io/xs_wire.h (included by xenstore_lib.h): the wire protocol pyxen.xenstore's
 * pipelined batches speak on their own connection to xenstored. */
enum xsd_sockmsg_type {
    XS_CONTROL, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH,
    XS_TRANSACTION_START, XS_TRANSACTION_END, XS_INTRODUCE, XS_RELEASE,
    XS_GET_DOMAIN_PATH, XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS, XS_WATCH_EVENT,
    XS_ERROR, XS_IS_DOMAIN_INTRODUCED, XS_RESUME, XS_SET_TARGET, ...
};
struct xsd_sockmsg {
    uint32_t type;
    uint32_t req_id;
    uint32_t tx_id;
    uint32_t len;
    ...;
};
struct xsd_errors {
    int errnum;
    const char *errstring;
};
static const struct xsd_errors xsd_errors[...];
