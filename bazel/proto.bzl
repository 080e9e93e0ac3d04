"""Protobuf and gRPC code generation with the system protoc and grpc_cpp_plugin (offline)."""

def sluice_proto_library(name, srcs, deps = [], grpc = False, visibility = None):
    """Generates C++ (and optionally gRPC) code for `srcs` and wraps it in a cc_library.

    Args:
      name: the cc_library's name; `<name>_files` is the filegroup of the .proto sources.
      srcs: .proto files, relative to this package (which is the proto import root).
      deps: other sluice_proto_library targets whose protos `srcs` import.
      grpc: also run grpc_cpp_plugin (for files that declare services).
      visibility: of the cc_library.
    """
    pkg = native.package_name()
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]

    native.filegroup(name = name + "_files", srcs = srcs, visibility = visibility)

    plugin = ""
    if grpc:
        plugin = " --grpc_out=$(GENDIR)/{pkg} --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin".format(pkg = pkg)
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_files" for d in deps],
        outs = outs,
        cmd = ("protoc --proto_path={pkg} --cpp_out=$(GENDIR)/{pkg}{plugin} " +
               " ".join(["{pkg}/" + s for s in srcs])).format(pkg = pkg, plugin = plugin),
        message = "protoc " + name,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["//third_party:protobuf"] + (["//third_party:grpc"] if grpc else []),
        visibility = visibility,
    )
