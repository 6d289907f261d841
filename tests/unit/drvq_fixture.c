// SPDX-License-Identifier: MIT
#include <errno.h>

#include "drvq_fixture.h"

int drvq_add_then_detach_all(struct uvirtio_drvq *q, const struct iovec *in, int *toks, unsigned n)
{
	unsigned got = 0;
	void *t;
	int ret;

	for (unsigned i = 0; i < n; i++) {
		ret = uvirtio_drvq_add(q, NULL, 0, in, 1, &toks[i]);
		if (ret)
			return ret;
	}
	while ((t = uvirtio_drvq_detach_unused(q))) {
		if (got >= n || t != &toks[got])
			return -EPROTO;
		got++;
	}
	return (int)got;
}
