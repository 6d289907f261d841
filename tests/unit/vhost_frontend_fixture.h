/* SPDX-License-Identifier: MIT */
/*
 * Fixtures of the vhost-user front-end tests (test_vhost_frontend.c,
 * test_vhost_frontend_lifecycle.c), compiled into each program:
 *
 * - struct server: uvirtio's own blk backend serving a file image on a
 *   socket, in a thread (server_start(), server_stop());
 * - struct fake: a scripted backend on a socketpair, well-behaved until its
 *   mode tells it otherwise (fake_connect(), fake_finish());
 * - the data pattern written through the front-end and checked in the image.
 */
#ifndef UVIRTIO_TESTS_UNIT_VHOST_FRONTEND_FIXTURE_H
#define UVIRTIO_TESTS_UNIT_VHOST_FRONTEND_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uvirtio/blk_dev.h"
#include "uvirtio/vhost_backend.h"
#include "uvirtio/vhost_frontend.h"
#include "../support/transport_internal.h"

#define PF(f) (1ull << VHOST_USER_PROTOCOL_F_##f)
#define IMG_SECTORS 8192u /* 4 MiB */

struct server {
	char dir[64], path[96], img[96];
	struct uvirtio_vhost_backend *vb;
	struct uvirtio_blk_dev blk;
	pthread_t thread;
	bool shares_img; /* another server's image: not removed at stop */
};

enum fake_mode {
	FAKE_HONEST,
	FAKE_CLOSE_AT,      /* close when @at arrives */
	FAKE_SHORT_REPLY,   /* reply to @at with 4 bytes */
	FAKE_HUGE_REPLY,    /* reply to @at with a 5000-byte payload */
	FAKE_OTHER_REQUEST, /* reply to @at as if to another request */
	FAKE_SILENT_AT,     /* never answer @at */
	FAKE_NO_VERSION_1,  /* features without VERSION_1 */
	FAKE_BAD_USED,      /* on the first kick, a used entry with id 77 */
	FAKE_REFUSE_AT,     /* ack @at with 1, a failure */
	FAKE_BAD_BASE,      /* answer GET_VRING_BASE for another ring */
	FAKE_EXTRA_ACK_AT,  /* ack @at twice, in one write */
	/* GET_INFLIGHT_FD answered (honestly otherwise) ... */
	FAKE_INFLIGHT_NO_FD,   /* without the region's fd */
	FAKE_INFLIGHT_TWO_FDS, /* with two fds */
	FAKE_INFLIGHT_SMALL,   /* with a region of 64 bytes */
	FAKE_INFLIGHT_PAST_FD, /* with a size twice what the fd holds */
};

/* What a fake saw, in order (FAKE_LOG_MAX requests at most). */
#define FAKE_LOG_MAX 256

struct fake {
	int sock;
	enum fake_mode mode;
	uint32_t at;
	pthread_t thread;
	void *map;
	size_t map_size;
	uint64_t map_uva;
	uint64_t used_uva;
	int kick_fd, call_fd;
	uint64_t status;
	/* Protocol features offered; 0: REPLY_ACK, CONFIG and STATUS. */
	uint64_t offer;
	uint64_t extra_features; /* offered besides VERSION_1, FLUSH and bit 30 */
	uint64_t features;       /* what SET_FEATURES carried */
	/* Atomic: ring 0 was started (SET_VRING_KICK) and not stopped since
	 * (GET_VRING_BASE), i.e. this backend would be using it. */
	bool ring0_running;
	/* Atomic: a SET_VRING_KICK for ring 0 came while the fake held no
	 * call fd for it (completions it made then would go unsignalled). */
	bool kick_before_call;
	/* Atomic: the last SET_VRING_BASE for ring 0, and how many came. */
	uint32_t ring0_base;
	unsigned ring0_bases;
	/* The answer to GET_VRING_BASE for ring 0; 0: what was asked. */
	uint32_t ring0_base_answer;
	/* Every request received, in order (read after fake_finish()). */
	uint32_t log[FAKE_LOG_MAX];
	unsigned nlog;
	/* INFLIGHT_SHMFD: what GET_INFLIGHT_FD asked and what the last
	 * SET_INFLIGHT_FD carried, and its fd (kept; closed at finish). */
	struct vhost_user_inflight inflight_asked, inflight_set;
	int inflight_fd;
};

/* @img: an image to share with another server (a move's target); NULL:
 * a new one. 0 when the server runs. */
int server_start_on(struct server *s, unsigned queues, const char *img);
int server_start(struct server *s, unsigned queues);
void server_stop(struct server *s);

/* A front-end on @path with 16 MiB of guest memory, @disable protocol
 * features turned off; the connect's error line is printed on failure. */
int fe_connect(struct uvirtio_vhost_frontend **fe, const char *path, uint64_t disable);

/* The data pattern @seed: written by fill(), checked by the others. */
void fill(unsigned char *p, size_t len, unsigned seed);
bool same_as_pattern(const unsigned char *p, size_t len, unsigned seed);
bool image_has_pattern(const char *img, uint64_t sector, size_t len, unsigned seed);

/* Starts a scripted backend offering protocol features @offer (0: REPLY_ACK,
 * CONFIG and STATUS) and connects a front-end to it: the connect's return
 * value. fake_finish() after the front-end is destroyed (or never was). */
int fake_connect_offering(struct fake *f, enum fake_mode mode, uint32_t at, uint64_t offer,
			  struct uvirtio_vhost_frontend **fe, char *err, size_t err_size);
int fake_connect(struct fake *f, enum fake_mode mode, uint32_t at,
		 struct uvirtio_vhost_frontend **fe, char *err, size_t err_size);
void fake_finish(struct fake *f);
/* Sets @f up (a fresh struct fake) for fake_thread() on @sock. */
void fake_init(struct fake *f, enum fake_mode mode, uint32_t at, uint64_t offer, int sock);
/* Whether @f logged @req, and the position of its first entry at or after @from. */
int fake_log_find(const struct fake *f, uint32_t req, unsigned from);
/* The scripted backend itself, on f->sock, for a test that sets a fake up
 * by hand (a struct fake with its mode, fds at -1 and sock filled in). */
void *fake_thread(void *arg);
bool fake_ring0_running(struct fake *f);

/* A connect to a scripted backend in @mode, which breaks the set-up at
 * request @at: true when the connect returned @want and its error line
 * names @text (else both are printed); nothing is left behind either way. */
bool fake_set_up_fails(enum fake_mode mode, uint32_t at, int want, const char *text);

/* Where guest memory starts, as the device sees it. */
uint64_t guest_base(struct uvirtio_transport *t);

/* Takes the transport through a driver's start with one ring of 8 (a
 * layout inside guest memory; the fakes do not read it) to DRIVER_OK,
 * negotiating @features (start_ring0(): VERSION_1 alone). */
int start_ring0_with(struct uvirtio_transport *t, uint64_t features);
int start_ring0(struct uvirtio_transport *t);

#endif
