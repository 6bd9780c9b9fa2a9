/* pyxen._linux: typed wrappers over the loop, block and interface ioctls pyxen.devices
 * makes (struct ifreq's unions stay the compiler's business). */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/sockios.h>

#ifndef LOOP_CONFIGURE            /* Linux 5.8; older headers: the kernel says EINVAL */
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
    __u32 fd;
    __u32 block_size;
    struct loop_info64 info;
    __u64 __reserved[8];
};
#endif

#ifndef SIOCBRADDIF
#define SIOCBRADDIF 0x89a2
#define SIOCBRDELIF 0x89a3
#endif

static int pyxen_ioctl_arg(int fd, unsigned long request, unsigned long arg)
{
    return ioctl(fd, request, arg);
}

static int pyxen_ioctl_ptr(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

static int pyxen_ifreq_init(struct ifreq *ifr, const char *ifname)
{
    memset(ifr, 0, sizeof(*ifr));
    if (strlen(ifname) >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strncpy(ifr->ifr_name, ifname, IFNAMSIZ - 1);
    return 0;
}

static int pyxen_if_get_flags(int sock, const char *ifname, unsigned int *flags)
{
    struct ifreq ifr;
    if (pyxen_ifreq_init(&ifr, ifname) < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return -1;
    *flags = (unsigned short)ifr.ifr_flags;
    return 0;
}

static int pyxen_if_set_flags(int sock, const char *ifname, unsigned int flags)
{
    struct ifreq ifr;
    if (pyxen_ifreq_init(&ifr, ifname) < 0)
        return -1;
    ifr.ifr_flags = (short)flags;
    return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

static int pyxen_if_rename(int sock, const char *ifname, const char *newname)
{
    struct ifreq ifr;
    if (pyxen_ifreq_init(&ifr, ifname) < 0)
        return -1;
    if (strlen(newname) >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strncpy(ifr.ifr_newname, newname, IFNAMSIZ - 1);
    return ioctl(sock, SIOCSIFNAME, &ifr);
}

static int pyxen_br_port(int sock, unsigned long request, const char *bridge, int ifindex)
{
    struct ifreq ifr;
    if (pyxen_ifreq_init(&ifr, bridge) < 0)
        return -1;
    ifr.ifr_ifindex = ifindex;
    return ioctl(sock, request, &ifr);
}
