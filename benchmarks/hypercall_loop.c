/* The C anchor for benchmarks/hypercall.py: N operations of the stable Xen libraries in a
 * loop, timed inside the process (after 10 warm-up iterations), doing what the pyxen calls
 * being compared do.
 *
 *   hypercall_loop evtchn N          notify + wait round trip between two handles in dom0
 *   hypercall_loop gntmap N          map + unmap (gnttab) of one page shared with gntshr
 *   hypercall_loop gntcopy N         grant copy of 4096 bytes from such a page
 *   hypercall_loop fmem N DOMID GFN  foreign map + unmap of one frame of DOMID
 *
 * Prints the seconds per operation. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenforeignmemory.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define DIE(what) do { perror(what); exit(1); } while (0)

/* wait as pyxen.evtchn does: the fd is non-blocking; take the pending port, poll only
 * if there is none yet, then unmask it */
static void wait_port(xenevtchn_handle *h, int fd, evtchn_port_t want)
{
    xenevtchn_port_or_error_t port = xenevtchn_pending(h);
    if (port < 0 && errno == EAGAIN) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 30000) != 1)
            DIE("poll");
        port = xenevtchn_pending(h);
    }
    if (port < 0)
        DIE("xenevtchn_pending");
    if ((evtchn_port_t)port != want) {
        fprintf(stderr, "event on port %d, expected %u\n", port, want);
        exit(1);
    }
    if (xenevtchn_unmask(h, port) < 0)
        DIE("xenevtchn_unmask");
}

static double evtchn(unsigned n)
{
    xenevtchn_handle *a = xenevtchn_open(NULL, 0), *b = xenevtchn_open(NULL, 0);
    if (!a || !b)
        DIE("xenevtchn_open");
    int fa = xenevtchn_fd(a), fb = xenevtchn_fd(b);
    fcntl(fa, F_SETFL, fcntl(fa, F_GETFL) | O_NONBLOCK);
    fcntl(fb, F_SETFL, fcntl(fb, F_GETFL) | O_NONBLOCK);
    xenevtchn_port_or_error_t pa = xenevtchn_bind_unbound_port(a, 0);
    if (pa < 0)
        DIE("xenevtchn_bind_unbound_port");
    xenevtchn_port_or_error_t pb = xenevtchn_bind_interdomain(b, 0, pa);
    if (pb < 0)
        DIE("xenevtchn_bind_interdomain");
    wait_port(b, fb, pb);       /* a new interdomain binding starts pending */
    double t0 = 0;
    for (unsigned i = 0; i < n + 10; i++) {
        if (i == 10)
            t0 = now();
        if (xenevtchn_notify(a, pa) < 0)
            DIE("xenevtchn_notify");
        wait_port(b, fb, pb);
        if (xenevtchn_notify(b, pb) < 0)
            DIE("xenevtchn_notify");
        wait_port(a, fa, pa);
    }
    double t = (now() - t0) / n;
    xenevtchn_close(a);
    xenevtchn_close(b);
    return t;
}

static double grant(unsigned n, int copy)
{
    xengntshr_handle *gs = xengntshr_open(NULL, 0);
    xengnttab_handle *gt = xengnttab_open(NULL, 0);
    if (!gs || !gt)
        DIE("xengnttab_open");
    uint32_t ref;
    void *page = xengntshr_share_pages(gs, 0, 1, &ref, 1);
    if (!page)
        DIE("xengntshr_share_pages");
    memset(page, 0x5a, 4096);
    static char buf[4096];
    double t0 = 0;
    for (unsigned i = 0; i < n + 10; i++) {
        if (i == 10)
            t0 = now();
        if (copy) {
            xengnttab_grant_copy_segment_t seg;
            memset(&seg, 0, sizeof(seg));
            seg.flags = GNTCOPY_source_gref;
            seg.source.foreign.domid = 0;
            seg.source.foreign.ref = ref;
            seg.source.foreign.offset = 0;
            seg.dest.virt = buf;
            seg.len = 4096;
            if (xengnttab_grant_copy(gt, 1, &seg) || seg.status != GNTST_okay)
                DIE("xengnttab_grant_copy");
        } else {
            void *m = xengnttab_map_grant_ref(gt, 0, ref, PROT_READ | PROT_WRITE);
            if (!m)
                DIE("xengnttab_map_grant_ref");
            if (xengnttab_unmap(gt, m, 1))
                DIE("xengnttab_unmap");
        }
    }
    double t = (now() - t0) / n;
    if (copy && buf[4095] != 0x5a) {
        fprintf(stderr, "grant copy moved the wrong bytes\n");
        exit(1);
    }
    xengntshr_unshare(gs, page, 1);
    xengnttab_close(gt);
    xengntshr_close(gs);
    return t;
}

static double fmem(unsigned n, uint32_t domid, xen_pfn_t gfn)
{
    xenforeignmemory_handle *h = xenforeignmemory_open(NULL, 0);
    if (!h)
        DIE("xenforeignmemory_open");
    double t0 = 0;
    for (unsigned i = 0; i < n + 10; i++) {
        if (i == 10)
            t0 = now();
        int err = 0;
        void *m = xenforeignmemory_map(h, domid, PROT_READ, 1, &gfn, &err);
        if (!m || err)
            DIE("xenforeignmemory_map");
        if (xenforeignmemory_unmap(h, m, 1))
            DIE("xenforeignmemory_unmap");
    }
    double t = (now() - t0) / n;
    xenforeignmemory_close(h);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s evtchn|gntmap|gntcopy|fmem N [DOMID GFN]\n", argv[0]);
        return 2;
    }
    const char *op = argv[1];
    unsigned n = atoi(argv[2]);
    double t;
    if (!strcmp(op, "evtchn"))
        t = evtchn(n);
    else if (!strcmp(op, "gntmap"))
        t = grant(n, 0);
    else if (!strcmp(op, "gntcopy"))
        t = grant(n, 1);
    else if (!strcmp(op, "fmem") && argc == 5)
        t = fmem(n, strtoul(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
    else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    printf("%.9f\n", t);
    return 0;
}
