/* SPDX-License-Identifier: MIT */
/*
 * Fds on a message a fuzz target sends as a hostile peer: the codec
 * (vhost_msg.c) refuses to send what a hostile peer would, so the targets
 * build their SCM_RIGHTS control message themselves, here.
 */
#ifndef UVIRTIO_FUZZ_FDS_H
#define UVIRTIO_FUZZ_FDS_H

#include <string.h>
#include <sys/socket.h>

/* Attaches @nfds (> 0) of @fds to @h, in @cbuf, which must hold
 * CMSG_SPACE(nfds * sizeof(int)) bytes. */
static inline void fuzz_attach_fds(struct msghdr *h, char *cbuf, const int *fds, unsigned nfds)
{
	struct cmsghdr *c;

	memset(cbuf, 0, CMSG_SPACE(nfds * sizeof(int)));
	h->msg_control = cbuf;
	h->msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	c = CMSG_FIRSTHDR(h);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
}

#endif
