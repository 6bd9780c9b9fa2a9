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
