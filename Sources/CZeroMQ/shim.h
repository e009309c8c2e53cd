#pragma once
#include <zmq.h>
#include <sys/eventfd.h>
// ZMQ_ZAP_ENFORCE_DOMAIN is only declared under the draft API, but libzmq 4.3 accepts it.
static const int KILN_ZMQ_ZAP_ENFORCE_DOMAIN = 93;
