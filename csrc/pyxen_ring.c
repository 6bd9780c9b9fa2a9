/* C side of pyxen._ring: the real ring.h, blkif.h, netif.h and console.h, and the
 * index updates of ring.h's macros whose memory barriers Python cannot express.
 *
 * Each function mirrors one macro of xen/io/ring.h with xen_wmb()/xen_rmb()/xen_mb() as
 * C11 atomics: a producer index is published with a release store (xen_wmb(): the
 * entries before the index), read with an acquire load (xen_rmb(): the index before the
 * entries), and a full fence (xen_mb()) separates publishing an index from reading the
 * peer's event index (and arming an event index from re-reading the producer). Every
 * shared index is read exactly once per call and the value used is handed back, so the
 * caller checks the same value the count was computed from (a hostile peer may change
 * it at any time). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xen/xen.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>
#include <xen/io/console.h>

/* One generic name for the sring header (its fields precede the entries in every
 * DEFINE_RING_TYPES instance; the entries' offset depends only on their alignment). */
DEFINE_RING_TYPES(pyxen, uint8_t, uint8_t);

#define PYXEN_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define PYXEN_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define PYXEN_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define PYXEN_MB() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* __RING_SIZE: the entries that fit after the header, rounded down to a power of two. */
static unsigned int pyxen_ring_size(size_t bytes, size_t ring_offset, size_t entry_size)
{
    size_t n;
    if (entry_size == 0 || bytes < ring_offset + entry_size)
        return 0;
    n = (bytes - ring_offset) / entry_size;
    if (n > 0x80000000u)
        n = 0x80000000u;
    return __RD32((unsigned int)n);
}

/* SHARED_RING_INIT, then a release fence: the peer sees the zeroed header first. */
static void pyxen_ring_shared_init(pyxen_sring_t *s)
{
    __atomic_store_n(&s->req_prod, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->rsp_prod, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->req_event, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->rsp_event, 1, __ATOMIC_RELAXED);
    memset(s->pvt.pvt_pad, 0, sizeof(s->pvt.pvt_pad));
    memset(s->__pad, 0, sizeof(s->__pad));
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static RING_IDX pyxen_ring_load(const RING_IDX *idx)
{
    return PYXEN_ACQUIRE(idx);
}

static void pyxen_ring_store(RING_IDX *idx, RING_IDX value)
{
    PYXEN_RELEASE(idx, value);
}

/* RING_PUSH_REQUESTS */
static void pyxen_ring_push_requests(pyxen_sring_t *s, RING_IDX req_prod_pvt)
{
    PYXEN_RELEASE(&s->req_prod, req_prod_pvt);
}

/* RING_PUSH_RESPONSES */
static void pyxen_ring_push_responses(pyxen_sring_t *s, RING_IDX rsp_prod_pvt)
{
    PYXEN_RELEASE(&s->rsp_prod, rsp_prod_pvt);
}

/* RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: true if the backend asked (req_event) to be
 * notified of one of the requests published now. */
static int pyxen_ring_push_requests_and_check_notify(pyxen_sring_t *s, RING_IDX req_prod_pvt)
{
    RING_IDX old = PYXEN_RELAXED(&s->req_prod);
    RING_IDX new = req_prod_pvt;
    PYXEN_RELEASE(&s->req_prod, new);   /* xen_wmb(); req_prod = new */
    PYXEN_MB();                         /* back sees new requests before we check req_event */
    return (RING_IDX)(new - PYXEN_RELAXED(&s->req_event)) < (RING_IDX)(new - old);
}

/* RING_PUSH_RESPONSES_AND_CHECK_NOTIFY */
static int pyxen_ring_push_responses_and_check_notify(pyxen_sring_t *s, RING_IDX rsp_prod_pvt)
{
    RING_IDX old = PYXEN_RELAXED(&s->rsp_prod);
    RING_IDX new = rsp_prod_pvt;
    PYXEN_RELEASE(&s->rsp_prod, new);
    PYXEN_MB();
    return (RING_IDX)(new - PYXEN_RELAXED(&s->rsp_event)) < (RING_IDX)(new - old);
}

/* XEN_RING_NR_UNCONSUMED_REQUESTS over one read of req_prod (stored in *req_prod). */
static unsigned int pyxen_unconsumed_req(RING_IDX prod, RING_IDX req_cons,
                                         RING_IDX rsp_prod_pvt, unsigned int nr_ents)
{
    unsigned int req = prod - req_cons;
    unsigned int rsp = nr_ents - (req_cons - rsp_prod_pvt);
    return req < rsp ? req : rsp;
}

/* RING_HAS_UNCONSUMED_REQUESTS (the count); req_prod read once (acquire: xen_rmb()). */
static unsigned int pyxen_ring_unconsumed_requests(pyxen_sring_t *s, RING_IDX req_cons,
                                                   RING_IDX rsp_prod_pvt, unsigned int nr_ents,
                                                   RING_IDX *req_prod)
{
    RING_IDX prod = PYXEN_ACQUIRE(&s->req_prod);
    *req_prod = prod;
    return pyxen_unconsumed_req(prod, req_cons, rsp_prod_pvt, nr_ents);
}

/* RING_HAS_UNCONSUMED_RESPONSES (the count); rsp_prod read once. */
static unsigned int pyxen_ring_unconsumed_responses(pyxen_sring_t *s, RING_IDX rsp_cons,
                                                    RING_IDX *rsp_prod)
{
    RING_IDX prod = PYXEN_ACQUIRE(&s->rsp_prod);
    *rsp_prod = prod;
    return prod - rsp_cons;
}

/* RING_FINAL_CHECK_FOR_REQUESTS: nonzero (the count) if requests are waiting; else
 * req_event is armed for the next request and req_prod read again after a full fence. */
static unsigned int pyxen_ring_final_check_for_requests(pyxen_sring_t *s, RING_IDX req_cons,
                                                        RING_IDX rsp_prod_pvt,
                                                        unsigned int nr_ents,
                                                        RING_IDX *req_prod)
{
    unsigned int work = pyxen_ring_unconsumed_requests(s, req_cons, rsp_prod_pvt, nr_ents,
                                                       req_prod);
    if (work)
        return work;
    __atomic_store_n(&s->req_event, req_cons + 1, __ATOMIC_RELAXED);
    PYXEN_MB();
    return pyxen_ring_unconsumed_requests(s, req_cons, rsp_prod_pvt, nr_ents, req_prod);
}

/* RING_FINAL_CHECK_FOR_RESPONSES */
static unsigned int pyxen_ring_final_check_for_responses(pyxen_sring_t *s, RING_IDX rsp_cons,
                                                         RING_IDX *rsp_prod)
{
    unsigned int work = pyxen_ring_unconsumed_responses(s, rsp_cons, rsp_prod);
    if (work)
        return work;
    __atomic_store_n(&s->rsp_event, rsp_cons + 1, __ATOMIC_RELAXED);
    PYXEN_MB();
    return pyxen_ring_unconsumed_responses(s, rsp_cons, rsp_prod);
}
