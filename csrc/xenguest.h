/* libxenguest (xenguest.h), trimmed: the domain builder's entry points. */
struct xc_dom_image;
struct xc_dom_image *xc_dom_allocate(xc_interface *xch,
                                     const char *cmdline, const char *features);
void xc_dom_release(struct xc_dom_image *dom);
