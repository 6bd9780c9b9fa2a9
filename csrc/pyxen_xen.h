/* pyxen's own glue in the Xen extension (pyxen._xen), implemented in pyxen_xen.c. */
static const int pyxen_built_xen_major;
static const int pyxen_built_xen_minor;

/* Callbacks into Python (see pyxen/_log.py): one xentoollog message. */
extern "Python" void pyxen_xtl_message(void *handle, int level, int errnoval,
                                       const char *context, const char *message);

/* Callbacks into Python (see pyxen/light.py, _OsEvents): libxl_osevent_hooks. */
extern "Python" int pyxen_fd_register(void *user, int fd, void **reg_out, short events,
                                      void *for_libxl);
extern "Python" int pyxen_fd_modify(void *user, int fd, void **reg_update, short events);
extern "Python" void pyxen_fd_deregister(void *user, int fd, void *reg);
extern "Python" int pyxen_timeout_register(void *user, void **reg_out, struct timeval abs,
                                           void *for_libxl);
extern "Python" int pyxen_timeout_modify(void *user, void **reg_update, struct timeval abs);
extern "Python" void pyxen_timeout_deregister(void *user, void *reg);

/* A xentoollog_logger whose messages go to pyxen_xtl_message(handle, ...). */
xentoollog_logger *pyxen_logger_new(void *handle, int min_level);
void pyxen_logger_destroy(xentoollog_logger *logger);
/* Drop later messages (the Python side of the logger is being collected). */
void pyxen_logger_detach(xentoollog_logger *logger);

/* libc: libxenstore and libxl return malloc'd memory the caller frees. */
void free(void *ptr);

/* libxlutil: the settings of a parsed XLU_Config (pyxen.config enumerates keys with
 * this, since libxlutil.h has no iterator): the first `max` names and line numbers, index 0
 * the newest; returns the number of settings. */
int pyxen_xlu_settings(const XLU_Config *cfg, const char **names, int *linenos, int max);

/* libc: an in-memory FILE* for libxlutil's error report. */
FILE *open_memstream(char **ptr, size_t *sizeloc);
int fflush(FILE *stream);
int fclose(FILE *stream);

/* xs_read copying into out[cap] (one call, no free() from Python): length or -1/errno. */
int pyxen_xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, char *out,
                  unsigned int cap);
/* xs_write taking the value as const char * (Python bytes pass without a from_buffer). */
bool pyxen_xs_write(struct xs_handle *h, xs_transaction_t t, const char *path,
                    const char *data, unsigned int len);
