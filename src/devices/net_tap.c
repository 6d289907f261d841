// SPDX-License-Identifier: MIT
/*
 * The tap backend: one queue of a tap interface per pair, opened with
 * IFF_VNET_HDR so the 12-byte virtio header travels with every frame and
 * offloads reach the host stack as the driver set them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../log/log_priv.h"
#include "net_priv.h"

static int open_queue(const char *name, bool mq, int *out)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int hdr_len = (int)NET_HDR_LEN;
	int le = 1;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	/* virtio 1 headers are little-endian whatever the host is. An older
	 * kernel without the call is a little-endian one's only problem. */
	(void)ioctl(fd, TUNSETVNETLE, &le);
	*out = fd;
	return 0;
}

int net_tap_open(struct net_dev *net, unsigned pairs)
{
	int ret;

	net->tap_mq = true;
	ret = open_queue(net->tap_name, true, &net->pairs[0].tap_fd);
	/* An existing single-queue tap refuses IFF_MULTI_QUEUE: one pair can
	 * use it as it is. */
	if (ret == -EINVAL && pairs == 1) {
		net->tap_mq = false;
		ret = open_queue(net->tap_name, false, &net->pairs[0].tap_fd);
	}
	if (ret == -EINVAL)
		ret = -EBUSY;
	for (unsigned i = 1; i < pairs && !ret; i++)
		ret = open_queue(net->tap_name, true, &net->pairs[i].tap_fd);
	if (ret) {
		net_tap_close(net);
		return ret;
	}
	for (unsigned i = 0; i < pairs; i++) {
		net->pairs[i].tap_attached = true;
		/* A queue takes frames only while its pair's rx queue runs:
		 * the kernel spreads flows over the attached queues, and one
		 * nobody reads would hold them. */
		net_tap_attach(&net->pairs[i], false);
	}
	return 0;
}

void net_tap_close(struct net_dev *net)
{
	for (unsigned i = 0; i < net->npairs; i++) {
		if (net->pairs[i].tap_fd >= 0)
			close(net->pairs[i].tap_fd);
		net->pairs[i].tap_fd = -1;
	}
}

void net_tap_attach(struct net_pair *p, bool on)
{
	struct ifreq ifr;

	if (p->tap_fd < 0 || !p->net->tap_mq || p->tap_attached == on)
		return;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(p->tap_fd, TUNSETQUEUE, &ifr) < 0) {
		uvirtio_log(UVIRTIO_LOG_WARN, "net: tap %s queue %u: cannot %s: %s", p->net->tap_name,
			    p->index, on ? "attach" : "detach", strerror(errno));
		return;
	}
	p->tap_attached = on;
}

int net_tap_set_offload(struct net_dev *net, uint64_t features)
{
	unsigned off = 0;

	/* What the tap may hand us is what the driver takes (GUEST_*). */
	if (features & (1ull << VIRTIO_NET_F_GUEST_CSUM))
		off |= TUN_F_CSUM;
	if (features & (1ull << VIRTIO_NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (features & (1ull << VIRTIO_NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	if (features & (1ull << VIRTIO_NET_F_GUEST_ECN))
		off |= TUN_F_TSO_ECN;
	for (unsigned i = 0; i < net->npairs; i++) {
		if (net->pairs[i].tap_fd >= 0 && ioctl(net->pairs[i].tap_fd, TUNSETOFFLOAD, off) < 0) {
			int err = -errno;

			uvirtio_log(UVIRTIO_LOG_ERR, "net: tap %s: TUNSETOFFLOAD %#x: %s", net->tap_name, off,
				    strerror(errno));
			return err;
		}
	}
	return 0;
}
