/* SPDX-License-Identifier: MIT */
/*
 * Private entry points of the vhost-user backend transport, for the unit
 * tests and the fuzzer: feed it messages without a socket and inspect what
 * it answered. Not installed, not part of the API.
 */
#ifndef UVIRTIO_VHOST_BACKEND_INTERNAL_H
#define UVIRTIO_VHOST_BACKEND_INTERNAL_H

#include "uvirtio/vhost_backend.h"
#include "vhost_msg.h"

/*
 * Handle one request as if it came from the connected front-end; the
 * backend takes @m's fds (keeps or closes every one). Replies go to the
 * connection when there is one and are kept for
 * uvirtio_vhost_backend_last_reply() either way.
 * Return: 0 to go on; a negative errno when the connection must end.
 */
int uvirtio_vhost_backend_handle_msg(struct uvirtio_vhost_backend *vb, struct uvirtio_vhost_msg *m);

/* What a disconnect does: stop the rings, reset the device, unmap guest
 * memory, close every fd the front-end sent (and the connection). */
void uvirtio_vhost_backend_end_connection(struct uvirtio_vhost_backend *vb);

/* The last reply built (its hdr.size is 0 before any). */
const struct uvirtio_vhost_msg *uvirtio_vhost_backend_last_reply(const struct uvirtio_vhost_backend *vb);

/* Guest memory regions mapped now. */
unsigned uvirtio_vhost_backend_mapped_regions(const struct uvirtio_vhost_backend *vb);

#endif
