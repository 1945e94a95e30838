/* Whether the one-stream kernels read their weights ahead (touch.h): a host's choice, by speed only. */
#include "bitnet.h"

int bn_read_ahead = 1;

int bn_set_read_ahead(int on) {
    if (on == 0 || on == 1) bn_read_ahead = on;
    return bn_read_ahead;
}
