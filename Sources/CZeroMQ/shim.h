#pragma once
#include <zmq.h>
// ZMQ_ZAP_ENFORCE_DOMAIN is only declared under the draft API, but libzmq 4.3 accepts it.
static const int KILN_ZMQ_ZAP_ENFORCE_DOMAIN = 93;
