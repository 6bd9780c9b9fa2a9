/* libxenvchan (libxenvchan.h), trimmed to what pyxen.vchan binds. The handle is opaque
 * here: pyxen only passes it back (4.20 made its 1-bit flags unsigned; the calls below are
 * the same in 4.17 and 4.20, so nothing is gated). */
struct libxenvchan;

struct libxenvchan *libxenvchan_server_init(struct xentoollog_logger *logger,
                                            int domain, const char *xs_path,
                                            size_t read_min, size_t write_min);
struct libxenvchan *libxenvchan_client_init(struct xentoollog_logger *logger,
                                            int domain, const char *xs_path);
void libxenvchan_close(struct libxenvchan *ctrl);
int libxenvchan_recv(struct libxenvchan *ctrl, void *data, size_t size);
int libxenvchan_read(struct libxenvchan *ctrl, void *data, size_t size);
int libxenvchan_send(struct libxenvchan *ctrl, const void *data, size_t size);
int libxenvchan_write(struct libxenvchan *ctrl, const void *data, size_t size);
int libxenvchan_wait(struct libxenvchan *ctrl);
int libxenvchan_fd_for_select(struct libxenvchan *ctrl);
int libxenvchan_is_open(struct libxenvchan *ctrl);
int libxenvchan_data_ready(struct libxenvchan *ctrl);
int libxenvchan_buffer_space(struct libxenvchan *ctrl);

/* pyxen glue (csrc/pyxen_vchan.c): the init calls leave the public `blocking` flag
 * uninitialised (malloc); pyxen sets it (to 0: pyxen waits on the fd itself). */
void pyxen_vchan_set_blocking(struct libxenvchan *ctrl, int blocking);
