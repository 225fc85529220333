"""Stand-in for npu_bridge.helper.helper: get_gen_ops() gives the adapter's
generated ops (here the float-status ops of npu_init)."""


def get_gen_ops():
    from npu_bridge.npu_init import gen_npu_ops
    return gen_npu_ops
