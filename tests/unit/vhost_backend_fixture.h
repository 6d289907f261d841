// SPDX-License-Identifier: MIT
/*
 * The vhost-user backend tests' scripted front-end (tests/unit/
 * test_vhost_backend*.c): a test plays QEMU 7.2's side over a socketpair,
 * with guest memory in a memfd, a driver-side ring built in it, and a
 * device type (rng, served on the control thread, or tdev, which serves
 * each queue on a thread of its own and polls the kick fds itself).
 */
#ifndef UVIRTIO_TESTS_VHOST_BACKEND_FIXTURE_H
#define UVIRTIO_TESTS_VHOST_BACKEND_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include "uvirtio/dma.h"
#include "uvirtio/drvq.h"
#include "uvirtio/rng.h"
#include "uvirtio/vhost_backend.h"
#include "../support/transport_internal.h"

#define GPA 0x100000000ull
#define MEM_SIZE (2u << 20)
/* Guards against a hang turning into a meson time-out; never a threshold
 * a passing run comes near. */
#define GUARD_MS 20000
#define NEED VHOST_USER_NEED_REPLY_MASK
#define PF(f) UVIRTIO_BIT(VHOST_USER_PROTOCOL_F_##f)
#define PF_ALL                                                                        \
	(PF(MQ) | PF(REPLY_ACK) | PF(BACKEND_REQ) | PF(CONFIG) | PF(RESET_DEVICE) | \
	 PF(CONFIGURE_MEM_SLOTS) | PF(STATUS) | PF(LOG_SHMFD) | PF(INFLIGHT_SHMFD))
#define RING_FEATURES                                                                         \
	(UVIRTIO_BIT(VIRTIO_F_VERSION_1) | UVIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |             \
	 UVIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC))
#define F_PROTO UVIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES)
#define S_ALL                                                                             \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | \
	 VIRTIO_CONFIG_S_DRIVER_OK)

/* Inside a helper returning int: report and fail. */
#define TRY(cond)                                                                  \
	do {                                                                       \
		if (!(cond)) {                                                     \
			printf("# %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
			return -1;                                                 \
		}                                                                  \
	} while (0)

/* A device type serving each queue on its own thread, polling the kick fd. */

#define TDEV_QUEUES 2

struct tdev_queue {
	pthread_t thread;
	int stop_fd;
	struct iovec iov[8];
};

struct tdev {
	struct uvirtio_device dev;
	char config[8];
	struct tdev_queue q[TDEV_QUEUES];
	uint64_t served; /* atomic */
};

/* The front-end: QEMU's side of the socket, and guest memory. */

struct fe {
	int sock;
	struct uvirtio_vhost_backend *vb;
	pthread_t thread;
	int run_ret;
	bool threaded;

	struct uvirtio_rng_dev rng;
	struct tdev td;
	struct uvirtio_device *dev;

	int memfd;
	char *map;
	struct uvirtio_dma dma;
	struct uvirtio_drvq dq[TDEV_QUEUES];
	bool dq_made[TDEV_QUEUES];
	/* The driver's ring features and size (0: RING_FEATURES, 64). */
	uint64_t ring_features;
	unsigned ring_num;
	int kick[TDEV_QUEUES], call[TDEV_QUEUES];

	pthread_mutex_t log_lock;
	unsigned log_lines;
	char last_log[256];
};

/* The packed ring over vhost-user, as QEMU 7.2 drives it. */

#define PACKED_FEATURES (RING_FEATURES | UVIRTIO_BIT(VIRTIO_F_RING_PACKED))
#define PACKED_NUM 13 /* not a power of 2: a packed ring may have any size */

/* The backend's log lines so far (the sink runs on the backend's thread). */
unsigned log_lines(struct fe *f);

/* A thread's body: uvirtio_vhost_backend_run(@arg's backend), its result in run_ret. */
void *run_thread(void *arg);

/* Guest memory and eventfds, as QEMU has them before it connects. */
int fe_memory(struct fe *f);

/* Nothing open yet; the library logs to @f (capture_log). */
void fe_init(struct fe *f);

/* Undoes fe_init()'s sink and lock. */
void fe_log_done(struct fe *f);

/* The device (tdev if @threaded, else rng), attached to the backend. */
int fe_device(struct fe *f, bool threaded);

/* A backend on one end of a socketpair (an inherited connected fd), run()
 * on a thread of its own. */
int fe_start(struct fe *f, bool threaded);

/* fe_start() with uvirtio_vhost_backend_set_state_file(@state_path). */
int fe_start_state(struct fe *f, bool threaded, const char *state_path);

/* Close our end (the backend sees the front-end go), join, free. */
int fe_finish(struct fe *f);

/* One message from the front-end, with @nfds fds. */
int fe_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	    const int *fds, unsigned nfds);

/* One message from the backend, within GUARD_MS. */
int fe_recv(struct fe *f, struct uvirtio_vhost_msg *m);

/* A request with a reply of one u64 (GET_*, or NEED_REPLY set). */
int fe_u64(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	   const int *fds, unsigned nfds, uint64_t *out);

/* A request with NEED_REPLY: 0 when acknowledged, 1 when refused. */
int fe_ack(struct fe *f, uint32_t req, const void *payload, uint32_t size, const int *fds,
	   unsigned nfds);

/* A request with a u64 payload; acknowledged (fe_ack()) if @flags has NEED. */
int fe_set_u64(struct fe *f, uint32_t req, uint32_t flags, uint64_t v);

/* A request with a vring state payload; acknowledged if @flags has NEED. */
int fe_state(struct fe *f, uint32_t req, uint32_t flags, uint32_t index, uint32_t num);

/* The backend ended the connection: our end reads EOF and run() returned. */
bool fe_disconnected(struct fe *f);

/* A GET_* request's u64 reply; ~0 on any failure. */
uint64_t get_u64(struct fe *f, uint32_t req);

/* The memfd's one region, as the front-end maps it. */
struct vhost_user_mem_region whole_memory(struct fe *f);

/* QEMU 7.2 vhost-user-blk realize: features, protocol features, queue
 * count, memory slots, the back-end channel, ownership, config space. */
int qemu_realize(struct fe *f, uint64_t protocol_features, int backend_fd);

/* The driver side's ring @i in guest memory (kept across restarts). */
int make_ring(struct fe *f, unsigned i, unsigned num);

/* Where guest address @gpa is in the front-end's mapping. */
uint64_t ring_uva(struct fe *f, uint64_t gpa);

/* Where ring @i (made by make_ring()) lies, as the back-end is told. */
struct uvirtio_drvq_ring dq_ring(struct fe *f, unsigned i);

/* QEMU 7.2 vhost_dev_start: features (and FEATURES_OK via GET/SET_STATUS
 * when STATUS is negotiated), memory, each ring, enable, DRIVER_OK. */
int qemu_start(struct fe *f, uint64_t pf, unsigned nrings, uint32_t base);

/* SET_VRING_KICK/CALL carry fds, so they are sent apart. */
int qemu_start_fds(struct fe *f, uint64_t pf, unsigned nrings);

/* qemu_start() and qemu_start_fds(). */
int qemu_full_start(struct fe *f, uint64_t pf, unsigned nrings, uint32_t base);

/* QEMU 7.2 vhost_dev_stop: status 0, disable, then each ring's position. */
int qemu_stop(struct fe *f, uint64_t pf, unsigned nrings, uint32_t *bases);

/* @n buffers on ring @i; waits for all of them through the call fd. */
int ring_io(struct fe *f, unsigned i, unsigned n, unsigned char fill);

/* A started backend, realized, with guest memory mapped by SET_MEM_TABLE. */
int hostile_start(struct fe *f);

#endif
