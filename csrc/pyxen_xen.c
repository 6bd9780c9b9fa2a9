/* C side of pyxen._xen: the real Xen headers, plus a xentoollog logger whose
 * vmessage callback formats the message and hands it to Python. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xentoollog.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xenstore.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenforeignmemory.h>
#include <sys/mman.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <libxlutil.h>
#include <xenhypfs.h>
#include <xenstat.h>

static const int pyxen_built_xen_major = PYXEN_XEN_MAJOR;
static const int pyxen_built_xen_minor = PYXEN_XEN_MINOR;

static void pyxen_xtl_message(void *handle, int level, int errnoval,
                              const char *context, const char *message);

struct pyxen_logger {
    xentoollog_logger vtable;
    void *handle;
    int min_level;
};

static void pyxen_vmessage(xentoollog_logger *logger, xentoollog_level level,
                           int errnoval, const char *context,
                           const char *format, va_list al)
{
    struct pyxen_logger *lg = (struct pyxen_logger *)logger;
    char buf[2048];
    if ((int)level < lg->min_level || !lg->handle)
        return;                 /* below the level, or the Python side is gone */
    vsnprintf(buf, sizeof(buf), format, al);
    pyxen_xtl_message(lg->handle, (int)level, errnoval, context, buf);
}

static void pyxen_progress(xentoollog_logger *logger, const char *context,
                           const char *doing_what, int percent,
                           unsigned long done, unsigned long total)
{
    (void)logger; (void)context; (void)doing_what; (void)percent; (void)done; (void)total;
}

static void pyxen_destroy(xentoollog_logger *logger)
{
    free(logger);
}

static xentoollog_logger *pyxen_logger_new(void *handle, int min_level)
{
    struct pyxen_logger *lg = calloc(1, sizeof(*lg));
    if (!lg)
        return NULL;
    lg->vtable.vmessage = pyxen_vmessage;
    lg->vtable.progress = pyxen_progress;
    lg->vtable.destroy = pyxen_destroy;
    lg->handle = handle;
    lg->min_level = min_level;
    return &lg->vtable;
}

static void pyxen_logger_destroy(xentoollog_logger *logger)
{
    if (logger)
        xtl_logger_destroy(logger);
}

/* The Python logger behind `logger` is being collected: later messages are dropped (the
 * C library that holds `logger` may still log while it closes). */
static void pyxen_logger_detach(xentoollog_logger *logger)
{
    if (logger)
        ((struct pyxen_logger *)logger)->handle = NULL;
}

/* libxlutil's XLU_Config is opaque in libxlutil.h, which has no call that lists the
 * parsed settings. Its layout (libxlu_internal.h, stable since Xen 4.5 added `op`) is
 * mirrored here only to list the settings' names and line numbers; values are always read
 * through the public xlu_cfg_get_* calls. pyxen.config checks this mirror against the real
 * library (a probe config with known names and lines) before its first use, and refuses to
 * run on a mismatch. */
struct pyxen_xlu_setting {
    struct pyxen_xlu_setting *next;
    char *name;
    XLU_ConfigValue *value;
    enum XLU_Operation op;
    int lineno;
};
struct pyxen_xlu_config {
    struct pyxen_xlu_setting *settings;
    FILE *report;
    char *config_source;
};

/* One walk of the list: the first `max` settings (index 0 the newest) into names[] and
 * linenos[]; returns how many settings there are. */
static int pyxen_xlu_settings(const XLU_Config *cfg, const char **names, int *linenos,
                              int max)
{
    const struct pyxen_xlu_setting *s;
    int n = 0;
    for (s = ((const struct pyxen_xlu_config *)cfg)->settings; s; s = s->next, n++) {
        if (n < max) {
            names[n] = s->name;
            linenos[n] = s->lineno;
        }
    }
    return n;
}

/* xs_read into the caller's buffer in one C call (libxenstore's buffer freed here):
 * the value's length, or -1 with errno set (E2BIG if it does not fit in cap). */
static int pyxen_xs_read(struct xs_handle *h, xs_transaction_t t, const char *path,
                         char *out, unsigned int cap)
{
    unsigned int len;
    void *v = xs_read(h, t, path, &len);
    if (!v)
        return -1;
    if (len > cap) {
        free(v);
        errno = E2BIG;
        return -1;
    }
    memcpy(out, v, len);
    free(v);
    return (int)len;
}

/* xs_write with the value as a char pointer, so that Python bytes pass as they are. */
static bool pyxen_xs_write(struct xs_handle *h, xs_transaction_t t, const char *path,
                           const char *data, unsigned int len)
{
    return xs_write(h, t, path, data, len);
}

/* pyxen.devicemodel: an ioreq server's per-vCPU request slots (xen/hvm/ioreq.h), handled
 * as qemu's xen-hvm does: see READY, then read the request (read barrier); write the
 * answer, then set IORESP_READY (write barrier). */
#include <xendevicemodel.h>
#include <xen/hvm/ioreq.h>

static const unsigned int pyxen_ioreq_frame = XENMEM_resource_ioreq_server_frame_ioreq(0);

static int pyxen_ioreq_take(void *page, unsigned int vcpu, ioreq_t *out)
{
    volatile ioreq_t *req = &((shared_iopage_t *)page)->vcpu_ioreq[vcpu];
    if (req->state != STATE_IOREQ_READY)
        return 0;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    memcpy(out, (const void *)req, sizeof(*out));
    req->state = STATE_IOREQ_INPROCESS;
    return 1;
}

static void pyxen_ioreq_respond(void *page, unsigned int vcpu, uint64_t data)
{
    volatile ioreq_t *req = &((shared_iopage_t *)page)->vcpu_ioreq[vcpu];
    if (req->dir == IOREQ_READ)
        req->data = data;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    req->state = STATE_IORESP_READY;
}
