/* SPDX-License-Identifier: MIT */
/*
 * Fixtures of the virtio-net device tests (test_net_dev.c,
 * test_net_dev_hostile.c): the net device behind one of the transports the
 * device serves its control queue on (loopback, mmio, pci: one table), a
 * driver on it through the driver core, and the driver's steps on the rx,
 * tx and control queues.
 */
#ifndef UVIRTIO_TESTS_NET_DEV_FIXTURE_H
#define UVIRTIO_TESTS_NET_DEV_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "uvirtio/driver.h"
#include "uvirtio/loopback.h"
#include "uvirtio/mmio.h"
#include "uvirtio/net_dev.h"
#include "uvirtio/pci.h"

#define WAIT_MS 20000 /* a hang guard, not a measurement */
#define HDR_LEN 12u   /* struct virtio_net_hdr_v1 */

#define NB(bit) UVIRTIO_BIT(VIRTIO_NET_F_##bit)
/* What the device offers with the reflector and a control queue (no MTU,
 * one pair), device-type bits only. */
#define NET_CTRL_BITS                                                                        \
	(NB(CTRL_VQ) | NB(CTRL_RX) | NB(CTRL_RX_EXTRA) | NB(CTRL_VLAN) | NB(CTRL_MAC_ADDR) | \
	 NB(GUEST_ANNOUNCE))
#define NET_BASE_BITS (NB(MAC) | NB(STATUS) | NB(MRG_RXBUF))
/* Every device-type bit a test may ask for: the driver gets what is offered of it. */
#define NET_ALL_BITS                                                                           \
	(NET_BASE_BITS | NET_CTRL_BITS | NB(MTU) | NB(MQ) | NB(CSUM) | NB(HOST_TSO4) |       \
	 NB(HOST_TSO6) | NB(HOST_ECN) | NB(GUEST_CSUM) | NB(GUEST_TSO4) | NB(GUEST_TSO6) |   \
	 NB(GUEST_ECN))
/* Offered bits that are not the core's transport features. */
#define NET_DEVICE_BITS(f) ((f) & ~UVIRTIO_TRANSPORT_FEATURES)

#define F_PACKED UVIRTIO_BIT(VIRTIO_F_RING_PACKED)
#define F_IN_ORDER UVIRTIO_BIT(VIRTIO_F_IN_ORDER)
#define F_EVENT_IDX UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX)
#define F_INDIRECT UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC)

/* The transports the device serves its control queue on. */
enum net_transport { NT_LOOPBACK, NT_MMIO, NT_PCI, NT_COUNT };
extern const char *const net_transport_names[NT_COUNT];

struct nenv {
	enum net_transport tr;
	struct uvirtio_loopback *lb;
	struct uvirtio_mmio_pair *mp;
	struct uvirtio_pci_pair *pp;
	struct uvirtio_net_dev net;
	struct uvirtio_driver drv;
	struct uvirtio_transport *t;
	struct uvirtio_dma *dma;
	unsigned npairs, nq;
	bool ctrl;     /* the device has a control queue */
	bool have_net, have_drv;
};

/* The device (@cfg) behind transport @tr, no driver yet. */
int nenv_create(struct nenv *e, enum net_transport tr, const struct uvirtio_net_dev_config *cfg);
/* Probe with @wanted (device bits and ring bits), set up every queue
 * (@sizes NULL: 256 each) and DRIVER_OK. */
int nenv_up_sized(struct nenv *e, uint64_t wanted, const unsigned *sizes);
int nenv_up(struct nenv *e, uint64_t wanted);
/* Remove the driver (reset, queues deleted). */
void nenv_down(struct nenv *e);
void nenv_destroy(struct nenv *e);

/* The queues: rx of pair @i is 2i, tx 2i+1; the control queue's index. */
static inline unsigned rxq(unsigned i)
{
	return 2 * i;
}

static inline unsigned txq(unsigned i)
{
	return 2 * i + 1;
}

unsigned ctrlq(const struct nenv *e);

/* Shared memory of @n bytes (64-byte aligned, zeroed). */
void *nalloc(struct nenv *e, size_t n);
struct uvirtio_net_dev_stats nstats(struct nenv *e);

/* Make a buffer available on queue @qi and kick. @token NULL: @out or @in. */
int add_buf(struct nenv *e, unsigned qi, const struct iovec *out, unsigned nout, const struct iovec *in,
	    unsigned nin, void *token);
/* Post one rx buffer of @len bytes at @buf (token @buf) on pair @pair. */
int post_rx(struct nenv *e, unsigned pair, void *buf, size_t len);
/* Wait for one used buffer on queue @qi. Return: 1, or what went wrong
 * (-ETIMEDOUT after WAIT_MS). */
int wait_used(struct nenv *e, unsigned qi, void **token, uint32_t *len);
/* Whether a used buffer is there now on @qi (no wait): 1 with it, 0. */
int poll_used(struct nenv *e, unsigned qi, void **token, uint32_t *len);
/* Send one tx chain @out on pair @pair and wait for its completion.
 * Return: the used length (0), or a negative errno. */
long tx_wait(struct nenv *e, unsigned pair, const struct iovec *out, unsigned nout);

/* A header and frame of @len bytes (dst, src MAC, then a pattern of @seed)
 * in one buffer of shared memory: HDR_LEN + @len bytes. */
uint8_t *make_packet(struct nenv *e, size_t len, unsigned seed);
/* Whether @got (an rx buffer's frame part) is the reflection of @sent's
 * frame of @len bytes: MACs swapped, the rest the same. */
bool is_reflection(const uint8_t *got, const uint8_t *sent, size_t len);

/* One control command: class, command, @len bytes of @data, and an ack
 * byte (none when !@with_ack). The ack in *@ack (0xee when not written).
 * Return: the used length, or a negative errno. */
long ctrl_cmd_ex(struct nenv *e, uint8_t cls, uint8_t cmd, const void *data, size_t len, bool with_ack,
		 uint8_t *ack);
/* The ack byte of one command (VIRTIO_NET_OK or _ERR), or a negative errno. */
int ctrl_cmd(struct nenv *e, uint8_t cls, uint8_t cmd, const void *data, size_t len);

/* Config space through the driver core (generation-consistent). */
int net_config(struct nenv *e, struct virtio_net_config *c);
uint32_t config_generation(struct nenv *e);

/* Wait until @pred(@e) holds (a hang guard); true when it did. */
bool wait_until(struct nenv *e, bool (*pred)(struct nenv *e));

/* Run @body on a new device (@cfg) over each transport in turn, the driver
 * up with @wanted (0: left down); a failure names its transport. For the
 * test programs (needs harness.h). */
#ifdef UVIRTIO_TEST_HARNESS_H
static inline void each_transport(const struct uvirtio_net_dev_config *cfg, uint64_t wanted,
				  void (*body)(struct nenv *e))
{
	/* A test that runs several: the first failure ends it. */
	for (unsigned tr = 0; tr < NT_COUNT && !test_failed; tr++) {
		static struct nenv e;
		int ret = nenv_create(&e, (enum net_transport)tr, cfg);

		if (!ret && wanted)
			ret = nenv_up(&e, wanted);
		if (ret) {
			printf("# set-up on %s failed: %d\n", net_transport_names[tr], ret);
			test_failed = true;
		} else {
			body(&e);
		}
		nenv_destroy(&e);
		if (test_failed) {
			printf("# transport: %s\n", net_transport_names[tr]);
			return;
		}
	}
}
#endif

#endif
