/* pyxen glue for libxenvchan, appended to pyxen._xen's source (see _ffi_build.py). */
#include <libxenvchan.h>

/* libxenvchan_server_init/client_init malloc the handle and never set `blocking`: set it
 * once, right after init, before any read or write looks at it. */
void pyxen_vchan_set_blocking(struct libxenvchan *ctrl, int blocking)
{
    ctrl->blocking = blocking ? 1 : 0;
}
