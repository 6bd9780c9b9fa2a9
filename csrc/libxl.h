/* libxenlight (libxl.h, _libxl_types.h), trimmed to what pyxen binds. */
typedef struct libxl__ctx libxl_ctx;
#define LIBXL_VERSION ...
typedef struct libxl_version_info {
    int xen_version_major;
    int xen_version_minor;
    char *xen_version_extra;
    char *compiler;
    char *compile_by;
    char *compile_domain;
    char *compile_date;
    char *capabilities;
    char *changeset;
    uint64_t virt_start;
    int pagesize;
    char *commandline;
    char *build_id;
} libxl_version_info;

int libxl_ctx_alloc(libxl_ctx **pctx, int version, unsigned flags, xentoollog_logger *lg);
int libxl_ctx_free(libxl_ctx *ctx);
const libxl_version_info *libxl_get_version_info(libxl_ctx *ctx);

/* ---- pyxen.light / pyxen.config (libxl.h, libxl_utils.h, _libxl_types.h) ---- */

typedef int... libxl_error;   /* ERROR_* codes */
/* the ERROR_* codes pyxen.errors maps (values filled in by the compiler) */
#define ERROR_NONSPECIFIC ...
#define ERROR_VERSION ...
#define ERROR_FAIL ...
#define ERROR_NI ...
#define ERROR_NOMEM ...
#define ERROR_INVAL ...
#define ERROR_BADFAIL ...
#define ERROR_GUEST_TIMEDOUT ...
#define ERROR_TIMEDOUT ...
#define ERROR_NOPARAVIRT ...
#define ERROR_LOCK_FAIL ...
#define ERROR_JSON_CONFIG_EMPTY ...
#define ERROR_DEVICE_EXISTS ...
#define ERROR_DOMAIN_NOTFOUND ...
#define ERROR_DOMAIN_DESTROYED ...
#define ERROR_FEATURE_REMOVED ...
#define ERROR_PROTOCOL_ERROR_QMP ...
#define ERROR_QMP_DEVICE_NOT_ACTIVE ...
#define ERROR_QMP_DEVICE_NOT_FOUND ...
const char *libxl_error_to_string(libxl_error p);
typedef uint32_t libxl_domid;
typedef int libxl_devid;
typedef uint8_t libxl_mac[6];
typedef char **libxl_string_list;
typedef struct { ...; } libxl_defbool;
typedef struct { uint8_t uuid[16]; ...; } libxl_uuid;
typedef struct {
    uint32_t size;          /* number of bytes in map */
    uint8_t *map;
} libxl_bitmap;
typedef uint64_t libxl_ev_user;
typedef struct { ...; } libxl_ev_link;
typedef struct {
    void (*callback)(libxl_ctx *ctx, int rc, void *for_callback);
    union {
        libxl_ev_user for_event; /* used if callback==NULL */
        void *for_callback; /* passed to callback */
    } u;
} libxl_asyncop_how;
typedef struct libxl_event libxl_event;
typedef struct {
    void (*callback)(libxl_ctx *ctx, libxl_event*, void *for_callback);
    libxl_ev_user for_event; /* always used */
    void *for_callback; /* passed to callback */
} libxl_asyncprogress_how;

/* enums (the compiler fixes their size) */
typedef int... libxl_domain_type;
typedef int... libxl_disk_backend;
typedef int... libxl_disk_format;
typedef int... libxl_shutdown_reason;
typedef int... libxl_nic_type;
typedef enum libxl_event_type {
    LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN = 1,
    LIBXL_EVENT_TYPE_DOMAIN_DEATH = 2,
    LIBXL_EVENT_TYPE_DISK_EJECT = 3,
    LIBXL_EVENT_TYPE_OPERATION_COMPLETE = 4,
    LIBXL_EVENT_TYPE_DOMAIN_CREATE_CONSOLE_AVAILABLE = 5,
} libxl_event_type;
typedef enum libxl_console_type {
    LIBXL_CONSOLE_TYPE_UNKNOWN = 0,
    LIBXL_CONSOLE_TYPE_SERIAL = 1,
    LIBXL_CONSOLE_TYPE_PV = 2,
    LIBXL_CONSOLE_TYPE_VUART = 3,
} libxl_console_type;
const char *libxl_domain_type_to_string(libxl_domain_type p);
const char *libxl_disk_format_to_string(libxl_disk_format p);
const char *libxl_disk_backend_to_string(libxl_disk_backend p);
const char *libxl_shutdown_reason_to_string(libxl_shutdown_reason p);

bool libxl_defbool_is_default(libxl_defbool db);
bool libxl_defbool_val(libxl_defbool db);

typedef struct libxl_dominfo {
    libxl_uuid uuid;
    libxl_domid domid;
    uint32_t ssidref;
    char * ssid_label;
    bool running;
    bool blocked;
    bool paused;
    bool shutdown;
    bool dying;
    bool never_stop;
    libxl_shutdown_reason shutdown_reason;
    uint64_t outstanding_memkb;
    uint64_t current_memkb;
    uint64_t shared_memkb;
    uint64_t paged_memkb;
    uint64_t max_memkb;
    uint64_t cpu_time;
    uint32_t vcpu_max_id;
    uint32_t vcpu_online;
    uint32_t cpupool;
    libxl_domain_type domain_type;
    ...;
} libxl_dominfo;
void libxl_dominfo_init(libxl_dominfo *p);
void libxl_dominfo_dispose(libxl_dominfo *p);

typedef struct libxl_device_disk {
    libxl_domid backend_domid;
    char * backend_domname;
    char * pdev_path;
    char * vdev;
    libxl_disk_backend backend;
    libxl_disk_format format;
    char * script;
    int removable;
    int readwrite;
    int is_cdrom;
    bool direct_io_safe;
    libxl_defbool discard_enable;
    ...;
} libxl_device_disk;
void libxl_device_disk_init(libxl_device_disk *p);
void libxl_device_disk_dispose(libxl_device_disk *p);

typedef struct libxl_device_nic {
    uint64_t rate_bytes_per_interval;
    uint32_t rate_interval_usecs;
    ...;
} libxl_device_nic;
void libxl_device_nic_init(libxl_device_nic *p);
void libxl_device_nic_dispose(libxl_device_nic *p);

typedef struct { ...; } libxl_domain_config;
void libxl_domain_config_init(libxl_domain_config *d_config);
void libxl_domain_config_dispose(libxl_domain_config *d_config);
char *libxl_domain_config_to_json(libxl_ctx *ctx, libxl_domain_config *p);
int libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *p, const char *s);

int libxl_domain_create_new(libxl_ctx *ctx, libxl_domain_config *d_config,
                            uint32_t *domid,
                            const libxl_asyncop_how *ao_how,
                            const libxl_asyncprogress_how *aop_console_how);
int libxl_retrieve_domain_configuration(libxl_ctx *ctx, uint32_t domid,
                                        libxl_domain_config *d_config,
                                        const libxl_asyncop_how *ao_how);
int libxl_domain_shutdown(libxl_ctx *ctx, uint32_t domid,
                          const libxl_asyncop_how *ao_how);
int libxl_domain_reboot(libxl_ctx *ctx, uint32_t domid,
                        const libxl_asyncop_how *ao_how);
int libxl_domain_destroy(libxl_ctx *ctx, uint32_t domid,
                         const libxl_asyncop_how *ao_how);
int libxl_domain_pause(libxl_ctx *ctx, uint32_t domid,
                       const libxl_asyncop_how *ao_how);
int libxl_domain_unpause(libxl_ctx *ctx, uint32_t domid,
                         const libxl_asyncop_how *ao_how);
int libxl_set_memory_target(libxl_ctx *ctx, uint32_t domid, int64_t target_memkb, int relative, int enforce);
int libxl_set_vcpuonline(libxl_ctx *ctx, uint32_t domid,
                         libxl_bitmap *cpumap,
                         const libxl_asyncop_how *ao_how);
int libxl_console_get_tty(libxl_ctx *ctx, uint32_t domid, int cons_num,
                          libxl_console_type type, char **path);
int libxl_domain_info(libxl_ctx*, libxl_dominfo *info_r,
                      uint32_t domid);
libxl_dominfo * libxl_list_domain(libxl_ctx*, int *nb_domain_out);
void libxl_dominfo_list_free(libxl_dominfo *list, int nb_domain);

/* libxl_utils.h */
int libxl_name_to_domid(libxl_ctx *ctx, const char *name, uint32_t *domid);
char *libxl_domid_to_name(libxl_ctx *ctx, uint32_t domid);
int libxl_bitmap_alloc(libxl_ctx *ctx, libxl_bitmap *bitmap, int n_bits);
void libxl_bitmap_init(libxl_bitmap *map);
void libxl_bitmap_dispose(libxl_bitmap *map);
void libxl_bitmap_set(libxl_bitmap *bitmap, int bit);

/* disks of a running domain */
typedef struct libxl_diskinfo {
    char * backend;
    uint32_t backend_id;
    char * frontend;
    uint32_t frontend_id;
    libxl_devid devid;
    int state;
    int evtch;
    int rref;
} libxl_diskinfo;
void libxl_diskinfo_init(libxl_diskinfo *p);
void libxl_diskinfo_dispose(libxl_diskinfo *p);
int libxl_device_disk_from_json(libxl_ctx *ctx, libxl_device_disk *p, const char *s);
int libxl_device_disk_add(libxl_ctx *ctx, uint32_t domid,
                          libxl_device_disk *disk,
                          const libxl_asyncop_how *ao_how);
int libxl_device_disk_remove(libxl_ctx *ctx, uint32_t domid,
                             libxl_device_disk *disk,
                             const libxl_asyncop_how *ao_how);
int libxl_device_disk_destroy(libxl_ctx *ctx, uint32_t domid,
                              libxl_device_disk *disk,
                              const libxl_asyncop_how *ao_how);
libxl_device_disk *libxl_device_disk_list(libxl_ctx *ctx,
                                          uint32_t domid, int *num);
void libxl_device_disk_list_free(libxl_device_disk* list, int num);
int libxl_device_disk_getinfo(libxl_ctx *ctx, uint32_t domid,
                              const libxl_device_disk *disk, libxl_diskinfo *diskinfo);
int libxl_vdev_to_device_disk(libxl_ctx *ctx, uint32_t domid, const char *vdev,
                              libxl_device_disk *disk);

/* ---- asynchronous operations and events (libxl.h, libxl_event.h) ---- */
#define ERROR_NOT_READY ...
#define ERROR_OSEVENT_REG_FAIL ...
#define ERROR_BUFFERFULL ...
#define ERROR_ABORTED ...
#define ERROR_NOTFOUND ...
/* the union u (shutdown reason, rc) is read through libxl_event_to_json */
struct libxl_event {
    libxl_domid domid;
    libxl_uuid domuuid;
    uint64_t for_user;
    libxl_event_type type;
    ...;
};
char *libxl_event_to_json(libxl_ctx *ctx, libxl_event *p);
const char *libxl_event_type_to_string(libxl_event_type p);
int libxl_ao_abort(libxl_ctx *ctx, const libxl_asyncop_how *how);
typedef int libxl_event_predicate(const libxl_event*, void *user);
int libxl_event_check(libxl_ctx *ctx, libxl_event **event_r, uint64_t typemask,
                      libxl_event_predicate *predicate, void *predicate_user);
int libxl_event_wait(libxl_ctx *ctx, libxl_event **event_r, uint64_t typemask,
                     libxl_event_predicate *predicate, void *predicate_user);
void libxl_event_free(libxl_ctx *ctx, libxl_event *event);
typedef struct libxl__evgen_domain_death libxl_evgen_domain_death;
int libxl_evenable_domain_death(libxl_ctx *ctx, uint32_t domid, libxl_ev_user,
                                libxl_evgen_domain_death **evgen_out);
void libxl_evdisable_domain_death(libxl_ctx *ctx, libxl_evgen_domain_death*);

/* the application's own poll loop (libxl_event.h, "first approach") */
struct pollfd {
    int fd;
    short events;
    short revents;
};
typedef int... nfds_t;
int poll(struct pollfd *fds, nfds_t nfds, int timeout);
struct timeval {
    long tv_sec;
    long tv_usec;
    ...;
};
int libxl_osevent_beforepoll(libxl_ctx *ctx, int *nfds_io, struct pollfd *fds,
                             int *timeout_upd, struct timeval now);
void libxl_osevent_afterpoll(libxl_ctx *ctx, int nfds, const struct pollfd *fds,
                             struct timeval now);

/* the second approach (libxl_event.h): libxl hands its fds and timeouts to the
 * application's event loop (pyxen.light's asyncio integration) */
typedef struct libxl_osevent_hooks {
  int (*fd_register)(void *user, int fd, void **for_app_registration_out,
                     short events, void *for_libxl);
  int (*fd_modify)(void *user, int fd, void **for_app_registration_update,
                   short events);
  void (*fd_deregister)(void *user, int fd, void *for_app_registration);
  int (*timeout_register)(void *user, void **for_app_registration_out,
                          struct timeval abs, void *for_libxl);
  int (*timeout_modify)(void *user, void **for_app_registration_update,
                         struct timeval abs);
  void (*timeout_deregister)(void *user, void *for_app_registration);
} libxl_osevent_hooks;
void libxl_osevent_register_hooks(libxl_ctx *ctx, const libxl_osevent_hooks *hooks,
                                  void *user);
void libxl_osevent_occurred_fd(libxl_ctx *ctx, void *for_libxl, int fd, short events,
                               short revents);
void libxl_osevent_occurred_timeout(libxl_ctx *ctx, void *for_libxl);
#define POLLIN ...
#define POLLPRI ...
#define POLLOUT ...

/* SIGCHLD: libxl reaps only its own children (the application keeps subprocess) */
typedef enum {
    libxl_sigchld_owner_libxl,
    libxl_sigchld_owner_mainloop,
    libxl_sigchld_owner_libxl_always,
    libxl_sigchld_owner_libxl_always_selective_reap,
} libxl_sigchld_owner;
typedef struct {
    libxl_sigchld_owner chldowner;
    ...;
} libxl_childproc_hooks;
void libxl_childproc_setmode(libxl_ctx *ctx, const libxl_childproc_hooks *hooks,
                             void *user);

/* ---- vcpus ---- */
int libxl_get_max_cpus(libxl_ctx *ctx);
int libxl_cpu_bitmap_alloc(libxl_ctx *ctx, libxl_bitmap *cpumap, int max_cpus);
int libxl_bitmap_test(const libxl_bitmap *bitmap, int bit);
int libxl_set_vcpuaffinity(libxl_ctx *ctx, uint32_t domid, uint32_t vcpuid,
                           const libxl_bitmap *cpumap_hard,
                           const libxl_bitmap *cpumap_soft);
typedef struct libxl_vcpuinfo {
    uint32_t vcpuid;
    uint32_t cpu;
    bool online;
    bool blocked;
    bool running;
    uint64_t vcpu_time;
    libxl_bitmap cpumap;
    libxl_bitmap cpumap_soft;
} libxl_vcpuinfo;
libxl_vcpuinfo *libxl_list_vcpu(libxl_ctx *ctx, uint32_t domid,
                                int *nb_vcpu, int *nr_cpus_out);
void libxl_vcpuinfo_list_free(libxl_vcpuinfo *, int nr_vcpus);

/* ---- network interfaces of a running domain ---- */
typedef struct libxl_nicinfo {
    char * backend;
    uint32_t backend_id;
    char * frontend;
    uint32_t frontend_id;
    libxl_devid devid;
    int state;
    int evtch;
    int rref_tx;
    int rref_rx;
} libxl_nicinfo;
void libxl_nicinfo_init(libxl_nicinfo *p);
void libxl_nicinfo_dispose(libxl_nicinfo *p);
char *libxl_device_nic_to_json(libxl_ctx *ctx, libxl_device_nic *p);
int libxl_device_nic_from_json(libxl_ctx *ctx, libxl_device_nic *p, const char *s);
int libxl_device_nic_add(libxl_ctx *ctx, uint32_t domid, libxl_device_nic *nic,
                         const libxl_asyncop_how *ao_how);
int libxl_device_nic_remove(libxl_ctx *ctx, uint32_t domid, libxl_device_nic *nic,
                            const libxl_asyncop_how *ao_how);
int libxl_device_nic_destroy(libxl_ctx *ctx, uint32_t domid, libxl_device_nic *nic,
                             const libxl_asyncop_how *ao_how);
libxl_device_nic *libxl_device_nic_list(libxl_ctx *ctx, uint32_t domid, int *num);
void libxl_device_nic_list_free(libxl_device_nic* list, int num);
int libxl_device_nic_getinfo(libxl_ctx *ctx, uint32_t domid,
                             const libxl_device_nic *nic, libxl_nicinfo *nicinfo);
int libxl_mac_to_device_nic(libxl_ctx *ctx, uint32_t domid, const char *mac,
                            libxl_device_nic *nic);
int libxl_devid_to_device_nic(libxl_ctx *ctx, uint32_t domid, int devid,
                              libxl_device_nic *nic);
