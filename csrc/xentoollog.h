/* libxentoollog (xentoollog.h), trimmed: loggers that pyxen routes into Python logging. */
typedef enum xentoollog_level {
    XTL_NONE, XTL_DEBUG, XTL_VERBOSE, XTL_DETAIL, XTL_PROGRESS, XTL_INFO,
    XTL_NOTICE, XTL_WARN, XTL_ERROR, XTL_CRITICAL, XTL_NUM_LEVELS
} xentoollog_level;

typedef struct xentoollog_logger xentoollog_logger;

void xtl_logger_destroy(struct xentoollog_logger *logger);

/* one message through a logger (what the Xen libraries call) */
void xtl_log(struct xentoollog_logger *logger, xentoollog_level level, int errnoval,
             const char *context, const char *format, ...);

const char *xtl_level_to_string(xentoollog_level);
