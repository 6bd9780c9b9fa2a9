/* pyxen._ring: Xen's shared-ring protocol (xen/io/ring.h) and the request/response
 * layouts of the io headers pyxen.ring serves: xen/io/blkif.h, xen/io/netif.h and the
 * console page of xen/io/console.h. No library: only the public headers (libxen-dev).
 * Layouts come from the compiler ("...;", "[...]"); unchanged between Xen 4.17 and 4.20. */

typedef unsigned int RING_IDX;
typedef uint32_t XENCONS_RING_IDX;
typedef int... grant_ref_t;
typedef int... blkif_vdev_t;
typedef int... blkif_sector_t;

/* The sring header, as every DEFINE_RING_TYPES instance lays it out: pyxen_ring.c
 * instantiates DEFINE_RING_TYPES(pyxen, uint8_t, uint8_t) to have one generic name for it. */
union pyxen_sring_entry { uint8_t req; uint8_t rsp; };
struct pyxen_sring {
    RING_IDX req_prod, req_event;
    RING_IDX rsp_prod, rsp_event;
    union pyxen_sring_entry ring[...];
    ...;
};
typedef struct pyxen_sring pyxen_sring_t;

/* xen/io/blkif.h */
#define BLKIF_OP_READ ...
#define BLKIF_OP_WRITE ...
#define BLKIF_OP_WRITE_BARRIER ...
#define BLKIF_OP_FLUSH_DISKCACHE ...
#define BLKIF_OP_DISCARD ...
#define BLKIF_OP_INDIRECT ...
#define BLKIF_MAX_SEGMENTS_PER_REQUEST ...
#define BLKIF_RSP_EOPNOTSUPP ...
#define BLKIF_RSP_ERROR ...
#define BLKIF_RSP_OKAY ...
struct blkif_request_segment {
    grant_ref_t gref;
    uint8_t first_sect, last_sect;
    ...;
};
struct blkif_request {
    uint8_t operation;
    uint8_t nr_segments;
    blkif_vdev_t handle;
    uint64_t id;
    blkif_sector_t sector_number;
    struct blkif_request_segment seg[...];
    ...;
};
typedef struct blkif_request blkif_request_t;
struct blkif_response {
    uint64_t id;
    uint8_t operation;
    int16_t status;
    ...;
};
typedef struct blkif_response blkif_response_t;
union blkif_sring_entry { struct blkif_request req; struct blkif_response rsp; ...; };
struct blkif_sring {
    RING_IDX req_prod, req_event;
    RING_IDX rsp_prod, rsp_event;
    union blkif_sring_entry ring[...];
    ...;
};

/* xen/io/netif.h */
#define NETIF_RSP_DROPPED ...
#define NETIF_RSP_ERROR ...
#define NETIF_RSP_OKAY ...
#define NETIF_RSP_NULL ...
#define NETTXF_csum_blank ...
#define NETTXF_data_validated ...
#define NETTXF_more_data ...
#define NETTXF_extra_info ...
#define NETRXF_data_validated ...
#define NETRXF_csum_blank ...
#define NETRXF_more_data ...
#define NETRXF_extra_info ...
struct netif_tx_request {
    grant_ref_t gref;
    uint16_t offset;
    uint16_t flags;
    uint16_t id;
    uint16_t size;
    ...;
};
typedef struct netif_tx_request netif_tx_request_t;
struct netif_tx_response {
    uint16_t id;
    int16_t status;
    ...;
};
typedef struct netif_tx_response netif_tx_response_t;
struct netif_rx_request {
    uint16_t id;
    uint16_t pad;
    grant_ref_t gref;
    ...;
};
typedef struct netif_rx_request netif_rx_request_t;
struct netif_rx_response {
    uint16_t id;
    uint16_t offset;
    uint16_t flags;
    int16_t status;
    ...;
};
typedef struct netif_rx_response netif_rx_response_t;
union netif_tx_sring_entry { struct netif_tx_request req; struct netif_tx_response rsp; ...; };
struct netif_tx_sring {
    RING_IDX req_prod, req_event;
    RING_IDX rsp_prod, rsp_event;
    union netif_tx_sring_entry ring[...];
    ...;
};
union netif_rx_sring_entry { struct netif_rx_request req; struct netif_rx_response rsp; ...; };
struct netif_rx_sring {
    RING_IDX req_prod, req_event;
    RING_IDX rsp_prod, rsp_event;
    union netif_rx_sring_entry ring[...];
    ...;
};

/* xen/io/console.h: a byte ring each way, not a request/response ring */
struct xencons_interface {
    char in[...];
    char out[...];
    XENCONS_RING_IDX in_cons, in_prod;
    XENCONS_RING_IDX out_cons, out_prod;
    ...;
};

/* pyxen_ring.c: the barrier-sensitive index updates of ring.h's macros */
unsigned int pyxen_ring_size(size_t bytes, size_t ring_offset, size_t entry_size);
void pyxen_ring_shared_init(pyxen_sring_t *s);
RING_IDX pyxen_ring_load(const RING_IDX *idx);
void pyxen_ring_store(RING_IDX *idx, RING_IDX value);
void pyxen_ring_push_requests(pyxen_sring_t *s, RING_IDX req_prod_pvt);
void pyxen_ring_push_responses(pyxen_sring_t *s, RING_IDX rsp_prod_pvt);
int pyxen_ring_push_requests_and_check_notify(pyxen_sring_t *s, RING_IDX req_prod_pvt);
int pyxen_ring_push_responses_and_check_notify(pyxen_sring_t *s, RING_IDX rsp_prod_pvt);
unsigned int pyxen_ring_unconsumed_requests(pyxen_sring_t *s, RING_IDX req_cons,
                                            RING_IDX rsp_prod_pvt, unsigned int nr_ents,
                                            RING_IDX *req_prod);
unsigned int pyxen_ring_unconsumed_responses(pyxen_sring_t *s, RING_IDX rsp_cons,
                                             RING_IDX *rsp_prod);
unsigned int pyxen_ring_final_check_for_requests(pyxen_sring_t *s, RING_IDX req_cons,
                                                 RING_IDX rsp_prod_pvt, unsigned int nr_ents,
                                                 RING_IDX *req_prod);
unsigned int pyxen_ring_final_check_for_responses(pyxen_sring_t *s, RING_IDX rsp_cons,
                                                  RING_IDX *rsp_prod);
