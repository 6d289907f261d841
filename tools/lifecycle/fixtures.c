// SPDX-License-Identifier: MIT
/*
 * The conformance suite's transports. loopback, mmio and pci start with the
 * device in this process; vhost-user starts with it in a child. A move
 * snapshots the suspended device (and the register model's own state) and
 * hands both to a new process — this program again, run with
 * --device-child — which maps the same guest memory (the memfd is passed
 * down), restores, and serves: register accesses over a socket
 * (regbus.h), or vhost-user. Loopback has no process boundary: its move
 * restores into a new device object in this process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

#include "fixtures.h"
#include "uvirtio/loopback.h"
#include "uvirtio/mmio.h"
#include "uvirtio/pci.h"
#include "uvirtio/snapshot.h"
#include "uvirtio/vhost_backend.h"
#include "uvirtio/vhost_frontend.h"

static int blk_init(struct uvirtio_blk_dev *blk, const char *image, struct uvirtio_mem *mem)
{
	struct uvirtio_blk_dev_config cfg = {
		.backend = UVIRTIO_BLK_BACKEND_FILE, .path = image,
		.num_queues = CONFORMANCE_QUEUES,
		/* Sleep at once when idle: tests share two CPUs. */
		.poll_us = -1,
	};

	return uvirtio_blk_dev_init(blk, &cfg, mem);
}

/* Whole buffers over a stream socket. */
static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
	char *c = p;

	while (n) {
		ssize_t k = recv(fd, c, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -ECONNRESET;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int send_blob(int fd, const void *p, uint32_t n)
{
	int ret = send_all(fd, &n, sizeof(n));

	return ret ? ret : send_all(fd, p, n);
}

/* A blob of at most 1 MiB, malloc'ed into *out. */
static int recv_blob(int fd, void **out, uint32_t *n)
{
	int ret = recv_all(fd, n, sizeof(*n));

	if (ret)
		return ret;
	if (*n > (1u << 20))
		return -EMSGSIZE;
	*out = malloc(*n ? *n : 1);
	if (!*out)
		return -ENOMEM;
	return recv_all(fd, *out, *n);
}

/* Interrupts. In this process: mmio's line is an eventfd the transport
 * polls; pci's vectors are the transport's own eventfds. */

/* A write fails only when the counter would overflow: the fd is readable
 * then, so the interrupt is not lost. */
static void irq_raise(int fd)
{
	(void)eventfd_write(fd, 1);
}

static void mmio_irq(void *opaque)
{
	struct fixture *f = opaque;

	irq_raise(f->irq_fds[0]);
}

static void pci_irq(void *opaque, uint16_t vector)
{
	struct fixture *f = opaque;

	if (vector == VIRTIO_MSI_NO_VECTOR) {
		for (unsigned v = 0; v <= CONFORMANCE_QUEUES; v++)
			pci_irq(opaque, (uint16_t)v);
		return;
	}
	if (f->in_child || !f->t) {
		if (vector <= CONFORMANCE_QUEUES && f->irq_fds[vector] >= 0)
			irq_raise(f->irq_fds[vector]);
		return;
	}
	int fd = uvirtio_pci_drv_vector_fd(f->t, vector);

	if (fd >= 0)
		irq_raise(fd);
}

static int model_create(struct fixture *f, struct uvirtio_device *dev)
{
	int ret;

	if (!strcmp(f->transport, "mmio")) {
		struct uvirtio_mmio_dev_config cfg = { .irq = mmio_irq, .opaque = f };
		struct uvirtio_mmio_dev *m;

		ret = uvirtio_mmio_dev_create(&m, dev, &cfg);
		if (!ret) {
			f->model = m;
			uvirtio_mmio_dev_bus(m, &f->bus);
		}
		return ret;
	} else {
		struct uvirtio_pci_dev_config cfg = { .irq = pci_irq, .opaque = f };
		struct uvirtio_pci_dev *m;

		ret = uvirtio_pci_dev_create(&m, dev, &cfg);
		if (!ret) {
			f->model = m;
			uvirtio_pci_dev_bus(m, &f->bus);
		}
		return ret;
	}
}

static void model_destroy(struct fixture *f)
{
	if (!f->model)
		return;
	if (!strcmp(f->transport, "mmio"))
		uvirtio_mmio_dev_destroy(f->model);
	else
		uvirtio_pci_dev_destroy(f->model);
	f->model = NULL;
}

static long model_save(struct fixture *f, void *buf, size_t size)
{
	if (!strcmp(f->transport, "mmio"))
		return uvirtio_mmio_dev_save(f->model, buf, size);
	return uvirtio_pci_dev_save(f->model, buf, size);
}

static int model_load(struct fixture *f, const void *buf, size_t size)
{
	const char *why = NULL;
	int ret;

	if (!strcmp(f->transport, "mmio"))
		return uvirtio_mmio_dev_load(f->model, buf, size);
	ret = uvirtio_pci_dev_load(f->model, buf, size, &why);
	if (ret && why)
		fprintf(stderr, "conformance child: pci state refused: %s\n", why);
	return ret;
}

/* Keep @fd open across exec. */
static int inherit(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl < 0 ? -errno : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0 ? -errno : 0;
}

/* Start the new process for a register transport; returns our socket end. */
static int spawn_register_child(struct fixture *f)
{
	char a_sock[32], a_mem[96], a_irq[64], a_tr[48], a_img[4200];
	size_t mem_size;
	uint64_t mem_guest_addr;
	int memfd = uvirtio_shared_mem_fd(&f->sm, &mem_size, &mem_guest_addr);
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	snprintf(a_sock, sizeof(a_sock), "--sock=%d", sv[1]);
	snprintf(a_mem, sizeof(a_mem), "--mem=%d,%zu,%" PRIu64, memfd, mem_size, mem_guest_addr);
	snprintf(a_irq, sizeof(a_irq), "--irq=%d,%d,%d", f->irq_fds[0], f->irq_fds[1], f->irq_fds[2]);
	snprintf(a_tr, sizeof(a_tr), "--transport=%s", f->transport);
	snprintf(a_img, sizeof(a_img), "--image=%s", f->image);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		char *args[] = { "conformance", "--device-child", a_tr, a_sock, a_mem, a_irq, a_img, NULL };

		/* Only async-signal-safe calls between fork and exec. */
		if (inherit(sv[1]) || inherit(memfd))
			_exit(127);
		for (unsigned i = 0; i <= CONFORMANCE_QUEUES; i++)
			if (f->irq_fds[i] >= 0 && inherit(f->irq_fds[i]))
				_exit(127);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(sv[1]);
	f->child = pid;
	return sv[0];
}

static int move_registers(struct fixture *f)
{
	struct uvirtio_device *dev = uvirtio_blk_dev_device(&f->blk[f->cur]);
	size_t snap_size = uvirtio_device_snapshot_size(dev);
	unsigned char model_state[4096];
	void *snap = malloc(snap_size);
	long nsnap, nmodel;
	int32_t child_ret = -EIO;
	struct uvirtio_regbus *bus;
	int ret, fd;

	if (!snap)
		return -ENOMEM;
	/* pci's vectors are the transport's eventfds: the child signals them. */
	if (!strcmp(f->transport, "pci"))
		for (unsigned v = 0; v <= CONFORMANCE_QUEUES; v++)
			f->irq_fds[v] = uvirtio_pci_drv_vector_fd(f->t, (uint16_t)v);
	nsnap = uvirtio_device_snapshot(dev, snap, snap_size);
	nmodel = model_save(f, model_state, sizeof(model_state));
	if (nsnap < 0 || nmodel < 0) {
		free(snap);
		return nsnap < 0 ? (int)nsnap : (int)nmodel;
	}
	fd = spawn_register_child(f);
	if (fd < 0) {
		free(snap);
		return fd;
	}
	ret = send_blob(fd, snap, (uint32_t)nsnap);
	if (!ret)
		ret = send_blob(fd, model_state, (uint32_t)nmodel);
	if (!ret)
		ret = recv_all(fd, &child_ret, sizeof(child_ret));
	free(snap);
	if (!ret)
		ret = child_ret;
	if (ret) {
		close(fd);
		return ret;
	}
	f->sock = fd;
	uvirtio_regbus_remote_init(&f->remote, fd);
	f->in_child = true;
	/* Switch the driver over first: set_bus waits for an access in
	 * progress (the interrupt thread's, say) under the transport's lock,
	 * so none can reach the old model once it is freed. */
	bus = uvirtio_regbus_remote_bus(&f->remote);
	ret = !strcmp(f->transport, "mmio") ? uvirtio_mmio_drv_set_bus(f->t, bus)
					      : uvirtio_pci_drv_set_bus(f->t, bus);
	/* The old device end lets go; it touches no guest memory (suspended,
	 * and its reset writes none). */
	model_destroy(f);
	uvirtio_blk_dev_destroy(&f->blk[f->cur]);
	snprintf(f->where_buf, sizeof(f->where_buf), "a new process (pid %d) over a register socket",
		 (int)f->child);
	f->where = f->where_buf;
	return ret;
}

static int create_registers(struct fixture *f)
{
	int ret = uvirtio_shared_mem_create(&f->sm, "uvirtio-conformance", 0, 0);

	if (ret)
		return ret;
	f->irq_fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->irq_fds[0] < 0)
		return -errno;
	ret = blk_init(&f->blk[0], f->image, uvirtio_shared_mem_device_view(&f->sm));
	if (ret)
		return ret;
	ret = model_create(f, uvirtio_blk_dev_device(&f->blk[0]));
	if (ret)
		return ret;
	if (!strcmp(f->transport, "mmio"))
		ret = uvirtio_mmio_drv_create(&f->t, &f->bus, uvirtio_shared_mem_driver_view(&f->sm), f->irq_fds[0]);
	else
		ret = uvirtio_pci_drv_create(&f->t, &f->bus, uvirtio_shared_mem_driver_view(&f->sm));
	f->move = move_registers;
	f->where = "this process";
	return ret;
}

/* Loopback: the move restores into a second device object. */

struct snap_arg {
	void *buf;
	size_t size;
	long n;
};

static int take_snapshot(struct uvirtio_device *dev, void *arg)
{
	struct snap_arg *a = arg;

	a->n = uvirtio_device_snapshot(dev, a->buf, a->size);
	return a->n < 0 ? (int)a->n : 0;
}

static int move_loopback(struct fixture *f)
{
	unsigned next = !f->cur;
	struct snap_arg a = { .size = uvirtio_device_snapshot_size(uvirtio_blk_dev_device(&f->blk[f->cur])) };
	const char *why = NULL;
	int ret;

	a.buf = malloc(a.size);
	if (!a.buf)
		return -ENOMEM;
	ret = uvirtio_loopback_run_on_device(f->lb, take_snapshot, &a);
	if (!ret)
		ret = blk_init(&f->blk[next], f->image, uvirtio_loopback_mem(f->lb));
	if (!ret) {
		ret = uvirtio_device_restore(uvirtio_blk_dev_device(&f->blk[next]), a.buf, (size_t)a.n, &why);
		if (ret)
			fprintf(stderr, "conformance: restore refused: %s\n", why);
	}
	free(a.buf);
	if (!ret)
		ret = uvirtio_loopback_replace_device(f->lb, uvirtio_blk_dev_device(&f->blk[next]));
	if (ret)
		return ret;
	uvirtio_blk_dev_destroy(&f->blk[f->cur]);
	f->cur = next;
	f->where = "a new device restored from the snapshot, in this process (loopback has no "
		   "process boundary)";
	return 0;
}

static int create_loopback(struct fixture *f)
{
	int ret = uvirtio_loopback_create(&f->lb, NULL);

	if (!ret)
		ret = blk_init(&f->blk[0], f->image, uvirtio_loopback_mem(f->lb));
	if (!ret)
		ret = uvirtio_loopback_start(f->lb, uvirtio_blk_dev_device(&f->blk[0]));
	f->t = uvirtio_loopback_transport(f->lb);
	f->move = move_loopback;
	f->where = "this process";
	return ret;
}


/* vhost-user: the device is a backend process from the start, on one end of
 * a socketpair. A move starts a second backend process and lets the
 * front-end carry the suspended device over (uvirtio_vhost_frontend_move():
 * same guest memory, features and config writes again, rings at the bases
 * the suspend saved); the first process exits when its connection closes. */

static int spawn_backend(struct fixture *f, pid_t *pid)
{
	char a_sock[32], a_img[4200];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	snprintf(a_sock, sizeof(a_sock), "--sock=%d", sv[1]);
	snprintf(a_img, sizeof(a_img), "--image=%s", f->image);
	*pid = fork();
	if (*pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (*pid == 0) {
		char *args[] = { "conformance", "--device-child", "--transport=vhost-user", a_sock,
				 a_img, NULL };

		if (inherit(sv[1]))
			_exit(127);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(sv[1]);
	return sv[0];
}

static int move_vhost_user(struct fixture *f)
{
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1 };
	char error[256] = "";
	pid_t pid, old = f->child;
	int ret;

	cfg.fd = spawn_backend(f, &pid);
	if (cfg.fd < 0)
		return cfg.fd;
	cfg.error = error;
	cfg.error_size = sizeof(error);
	ret = uvirtio_vhost_frontend_move(f->model, &cfg);
	if (ret) {
		fprintf(stderr, "conformance: move refused: %s\n", error);
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		return ret;
	}
	/* The old backend saw its front-end go and exits. */
	waitpid(old, NULL, 0);
	f->child = pid;
	snprintf(f->where_buf, sizeof(f->where_buf), "a new backend process (pid %d) over vhost-user",
		 (int)pid);
	f->where = f->where_buf;
	return 0;
}

static int create_vhost_user(struct fixture *f)
{
	struct uvirtio_vhost_frontend_config cfg = { .fd = -1 };
	struct uvirtio_vhost_frontend *fe;
	char error[256] = "";
	int ret;

	cfg.fd = spawn_backend(f, &f->child);
	if (cfg.fd < 0)
		return cfg.fd;
	cfg.error = error;
	cfg.error_size = sizeof(error);
	ret = uvirtio_vhost_frontend_connect(&fe, &cfg);
	if (ret) {
		fprintf(stderr, "conformance: connect: %s\n", error);
		return ret;
	}
	f->model = fe;
	f->t = uvirtio_vhost_frontend_transport(fe);
	f->in_child = true;
	f->move = move_vhost_user;
	f->where = "a backend process over vhost-user";
	return 0;
}

static int serve_vhost_user(int sock, const char *image)
{
	struct uvirtio_vhost_backend_config cfg = { .fd = sock };
	struct uvirtio_vhost_backend *vb;
	struct uvirtio_blk_dev blk;
	int ret = uvirtio_vhost_backend_create(&vb, &cfg);

	if (ret)
		return 1;
	ret = blk_init(&blk, image, uvirtio_vhost_backend_mem(vb));
	if (!ret)
		ret = uvirtio_vhost_backend_attach(vb, uvirtio_blk_dev_device(&blk));
	if (!ret)
		ret = uvirtio_vhost_backend_run(vb);
	uvirtio_vhost_backend_destroy(vb);
	uvirtio_blk_dev_destroy(&blk);
	return ret ? 1 : 0;
}

int fixture_create(struct fixture *f, const char *transport, const char *image, const char *self)
{
	memset(f, 0, sizeof(*f));
	f->name = f->transport = transport;
	f->image = image;
	f->self = self;
	f->sock = -1;
	for (unsigned i = 0; i <= CONFORMANCE_QUEUES; i++)
		f->irq_fds[i] = -1;
	if (!strcmp(transport, "loopback"))
		return create_loopback(f);
	if (!strcmp(transport, "mmio") || !strcmp(transport, "pci"))
		return create_registers(f);
	if (!strcmp(transport, "vhost-user"))
		return create_vhost_user(f);
	return -EINVAL;
}

void fixture_destroy(struct fixture *f)
{
	if (f->lb) {
		uvirtio_loopback_destroy(f->lb);
		uvirtio_blk_dev_destroy(&f->blk[f->cur]);
		return;
	}
	if (!strcmp(f->transport, "vhost-user")) {
		/* The backend process exits when its front-end goes. */
		uvirtio_vhost_frontend_destroy(f->model);
		waitpid(f->child, NULL, 0);
		return;
	}
	if (f->t) {
		/* A scenario that failed leaves the device running: reset it, so
		 * that its queue threads stop before the transport they signal
		 * goes. (A reset device is reset again harmlessly.) */
		f->t->ops->reset(f->t);
		if (!strcmp(f->transport, "mmio"))
			uvirtio_mmio_drv_destroy(f->t);
		else if (!strcmp(f->transport, "pci"))
			uvirtio_pci_drv_destroy(f->t);
	}
	if (f->in_child) {
		/* Closing the socket ends the child's serving loop. */
		close(f->sock);
		waitpid(f->child, NULL, 0);
		uvirtio_regbus_remote_destroy(&f->remote);
	} else {
		model_destroy(f);
		if (uvirtio_device_ops(uvirtio_blk_dev_device(&f->blk[f->cur])))
			uvirtio_blk_dev_destroy(&f->blk[f->cur]);
	}
	if (f->irq_fds[0] >= 0 && !strcmp(f->transport, "mmio"))
		close(f->irq_fds[0]);
	uvirtio_shared_mem_destroy(&f->sm);
}

/* The new process: --device-child --transport=T --sock=FD --mem=FD,SIZE,GA
 * --irq=FD,FD,FD --image=PATH. Restores what arrives on the socket, answers
 * with the result, then serves register accesses until the socket closes. */
int fixture_device_child(int argc, char **argv)
{
	struct fixture f = { 0 };
	struct uvirtio_mem_region r = { 0 };
	struct uvirtio_mem mem;
	void *snap = NULL, *model = NULL;
	uint32_t nsnap = 0, nmodel = 0;
	const char *why = NULL;
	int sock = -1, memfd = -1, ret;
	int32_t result;
	size_t size = 0;
	uint64_t ga = 0;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--transport=", 12))
			f.transport = argv[i] + 12;
		else if (!strncmp(argv[i], "--sock=", 7))
			sock = atoi(argv[i] + 7);
		else if (!strncmp(argv[i], "--mem=", 6))
			sscanf(argv[i] + 6, "%d,%zu,%" SCNu64, &memfd, &size, &ga);
		else if (!strncmp(argv[i], "--irq=", 6))
			sscanf(argv[i] + 6, "%d,%d,%d", &f.irq_fds[0], &f.irq_fds[1], &f.irq_fds[2]);
		else if (!strncmp(argv[i], "--image=", 8))
			f.image = argv[i] + 8;
	}
	if (f.transport && !strcmp(f.transport, "vhost-user") && sock >= 0 && f.image)
		return serve_vhost_user(sock, f.image);
	if (!f.transport || sock < 0 || memfd < 0 || !size || !f.image)
		return 2;
	f.in_child = true;
	r.host_addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (r.host_addr == MAP_FAILED)
		return 1;
	r.guest_addr = ga;
	r.size = size;
	r.fd = memfd;
	uvirtio_mem_init(&mem);
	ret = uvirtio_mem_add(&mem, &r);
	if (!ret)
		ret = blk_init(&f.blk[0], f.image, &mem);
	if (!ret)
		ret = recv_blob(sock, &snap, &nsnap);
	if (!ret)
		ret = recv_blob(sock, &model, &nmodel);
	if (!ret) {
		ret = uvirtio_device_restore(uvirtio_blk_dev_device(&f.blk[0]), snap, nsnap, &why);
		if (ret)
			fprintf(stderr, "conformance child: restore refused: %s\n", why);
	}
	if (!ret)
		ret = model_create(&f, uvirtio_blk_dev_device(&f.blk[0]));
	if (!ret)
		ret = model_load(&f, model, nmodel);
	result = ret;
	free(snap);
	free(model);
	if (send_all(sock, &result, sizeof(result)) || ret)
		return 1;
	ret = uvirtio_regbus_serve(sock, &f.bus);
	model_destroy(&f);
	uvirtio_blk_dev_destroy(&f.blk[0]);
	return ret ? 1 : 0;
}
