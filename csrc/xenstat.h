/* libxenstat (xenstat.h), trimmed: what xentop shows, per node and per domain. */
typedef struct xenstat_handle xenstat_handle;
typedef struct xenstat_domain xenstat_domain;
typedef struct xenstat_node xenstat_node;
typedef struct xenstat_vcpu xenstat_vcpu;
typedef struct xenstat_network xenstat_network;
typedef struct xenstat_vbd xenstat_vbd;

xenstat_handle *xenstat_init(void);
void xenstat_uninit(xenstat_handle *handle);

#define XENSTAT_VCPU ...
#define XENSTAT_NETWORK ...
#define XENSTAT_XEN_VERSION ...
#define XENSTAT_VBD ...
#define XENSTAT_ALL ...

/* one sample of everything `flags` asks for; freed with xenstat_free_node */
xenstat_node *xenstat_get_node(xenstat_handle *handle, unsigned int flags);
void xenstat_free_node(xenstat_node *node);
xenstat_domain *xenstat_node_domain(xenstat_node *node, unsigned int domid);
xenstat_domain *xenstat_node_domain_by_index(xenstat_node *node, unsigned index);
const char *xenstat_node_xen_version(xenstat_node *node);
unsigned long long xenstat_node_tot_mem(xenstat_node *node);
unsigned long long xenstat_node_free_mem(xenstat_node *node);
long xenstat_node_freeable_mb(xenstat_node *node);
unsigned int xenstat_node_num_domains(xenstat_node *node);
unsigned int xenstat_node_num_cpus(xenstat_node *node);
unsigned long long xenstat_node_cpu_hz(xenstat_node *node);

unsigned xenstat_domain_id(xenstat_domain *domain);
char *xenstat_domain_name(xenstat_domain *domain);
unsigned long long xenstat_domain_cpu_ns(xenstat_domain *domain);
unsigned int xenstat_domain_num_vcpus(xenstat_domain *domain);
xenstat_vcpu *xenstat_domain_vcpu(xenstat_domain *domain, unsigned int vcpu);
unsigned long long xenstat_domain_cur_mem(xenstat_domain *domain);
unsigned long long xenstat_domain_max_mem(xenstat_domain *domain);
unsigned int xenstat_domain_ssid(xenstat_domain *domain);
unsigned int xenstat_domain_dying(xenstat_domain *domain);
unsigned int xenstat_domain_crashed(xenstat_domain *domain);
unsigned int xenstat_domain_shutdown(xenstat_domain *domain);
unsigned int xenstat_domain_paused(xenstat_domain *domain);
unsigned int xenstat_domain_blocked(xenstat_domain *domain);
unsigned int xenstat_domain_running(xenstat_domain *domain);
unsigned int xenstat_domain_num_networks(xenstat_domain *);
xenstat_network *xenstat_domain_network(xenstat_domain *domain, unsigned int network);
unsigned int xenstat_domain_num_vbds(xenstat_domain *);
xenstat_vbd *xenstat_domain_vbd(xenstat_domain *domain, unsigned int vbd);

unsigned int xenstat_vcpu_online(xenstat_vcpu *vcpu);
unsigned long long xenstat_vcpu_ns(xenstat_vcpu *vcpu);

unsigned int xenstat_network_id(xenstat_network *network);
unsigned long long xenstat_network_rbytes(xenstat_network *network);
unsigned long long xenstat_network_rpackets(xenstat_network *network);
unsigned long long xenstat_network_rerrs(xenstat_network *network);
unsigned long long xenstat_network_rdrop(xenstat_network *network);
unsigned long long xenstat_network_tbytes(xenstat_network *network);
unsigned long long xenstat_network_tpackets(xenstat_network *network);
unsigned long long xenstat_network_terrs(xenstat_network *network);
unsigned long long xenstat_network_tdrop(xenstat_network *network);

unsigned int xenstat_vbd_type(xenstat_vbd *vbd);
unsigned int xenstat_vbd_dev(xenstat_vbd *vbd);
unsigned long long xenstat_vbd_oo_reqs(xenstat_vbd *vbd);
unsigned long long xenstat_vbd_rd_reqs(xenstat_vbd *vbd);
unsigned long long xenstat_vbd_wr_reqs(xenstat_vbd *vbd);
unsigned long long xenstat_vbd_rd_sects(xenstat_vbd *vbd);
unsigned long long xenstat_vbd_wr_sects(xenstat_vbd *vbd);
bool xenstat_vbd_error(xenstat_vbd *vbd);
