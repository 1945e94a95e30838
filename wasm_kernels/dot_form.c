/* Which of the relaxed dot's two forms the kernels use (bitnet.h): a host's choice, by speed only. */
#include "bitlinear.h"

int bn_dot_form_in_use = BN_DOT_I16;

int bn_set_dot_form(int form) {
    if (form >= 0 && form < BN_DOT_FORMS) bn_dot_form_in_use = form;
    return bn_dot_form_in_use;
}
