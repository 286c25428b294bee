// Python bindings for the kernels in preprocess.hpp: this file only checks arguments and
// converts types. Every problem with an argument becomes a ValueError naming it; kernels run
// with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "preprocess.hpp"

namespace py = pybind11;
using Triple = std::array<float, 3>;

namespace {

constexpr int kMaxSize = 4096;
// The largest frame side and ROI the kernels take: their int arithmetic (a row of 3 * side
// floats, a frame's grey copy) stays far inside its range, and a hostile shape (a zero-stride
// view claiming 2^32 rows) is refused instead of truncated or run for minutes.
constexpr long long kMaxSide = 1LL << 27;
constexpr long long kMaxPixels = 1LL << 27;
constexpr double kMinStd = 1e-6;  // a smaller std makes the output overflow float32
const Triple kImagenetMean{0.485f, 0.456f, 0.406f};
const Triple kImagenetStd{0.229f, 0.224f, 0.225f};

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string repr_of(const py::handle& o) { return py::repr(o).cast<std::string>(); }
std::string type_of(const py::handle& o) { return py::str(py::type::handle_of(o).attr("__name__")).cast<std::string>(); }

// A Python integer (anything with __index__, not a float or a string) as a long long; nullopt
// when it is not one or does not fit.
std::optional<long long> as_int(const py::handle& o) {
    if (PyBool_Check(o.ptr()) || PyFloat_Check(o.ptr())) return std::nullopt;
    PyObject* index = PyNumber_Index(o.ptr());
    if (index == nullptr) {
        PyErr_Clear();
        return std::nullopt;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return std::nullopt;
    }
    return v;
}

// frame must be a numpy array (no list or other object converted behind the caller's back).
py::array as_array(const py::object& frame) {
    if (!py::isinstance<py::array>(frame)) fail("frame must be a uint8 numpy array, got " + type_of(frame));
    return py::reinterpret_borrow<py::array>(frame);
}

void check_sides(long long width, long long height) {
    if (width > kMaxSide || height > kMaxSide) {
        fail("frame is " + std::to_string(width) + "x" + std::to_string(height) + ": sides of at most " +
             std::to_string(kMaxSide) + " pixels are supported");
    }
}

void check_pixels(long long w, long long h) {
    if (w * h > kMaxPixels) {
        fail("roi of " + std::to_string(w) + "x" + std::to_string(h) + " pixels: at most " + std::to_string(kMaxPixels) +
             " pixels are supported");
    }
}

void check_uint8(const py::array& a, const char* name) {
    if (a.dtype().kind() != 'u' || a.itemsize() != 1) {
        fail(std::string(name) + " must be a uint8 array, got dtype " +
             py::str(static_cast<py::object>(a.dtype())).cast<std::string>());
    }
    if (a.size() == 0) fail(std::string(name) + " is empty: shape " + shape_of(a));
}

// roi is None (the whole frame) or a sequence (tuple, list, 1-D array) of four integers
// (x, y, w, h); a dict, a set, a generator, a string or bytes is not one.
mpox::Roi parse_roi(const py::object& roi, long long width, long long height) {
    check_sides(width, height);
    if (roi.is_none()) {
        check_pixels(width, height);
        return {0, 0, static_cast<int>(width), static_cast<int>(height)};
    }
    const std::string bad = "roi must be four integers (x, y, w, h), got " + repr_of(roi);
    if (py::isinstance<py::str>(roi) || py::isinstance<py::bytes>(roi) || PyByteArray_Check(roi.ptr()) ||
        !PySequence_Check(roi.ptr())) {
        fail(bad);
    }
    std::array<long long, 4> v{};
    const Py_ssize_t n = PySequence_Size(roi.ptr());
    if (n != 4) {
        PyErr_Clear();
        fail(bad);
    }
    for (int i = 0; i < 4; ++i) {
        PyObject* item = PySequence_GetItem(roi.ptr(), i);
        if (item == nullptr) {
            PyErr_Clear();
            fail(bad);
        }
        const auto value = as_int(py::reinterpret_steal<py::object>(item));
        if (!value) fail(bad);
        v[i] = *value;
    }
    const auto [x, y, w, h] = v;
    if (w <= 0 || h <= 0) fail("roi width and height must be positive, got w=" + std::to_string(w) + ", h=" + std::to_string(h));
    // Compared without adding: x + w overflows for huge values and would pass the check.
    if (x < 0 || y < 0 || w > width || h > height || x > width - w || y > height - h) {
        fail("roi (x=" + std::to_string(x) + ", y=" + std::to_string(y) + ", w=" + std::to_string(w) +
             ", h=" + std::to_string(h) + ") is outside the " + std::to_string(width) + "x" +
             std::to_string(height) + " frame");
    }
    check_pixels(w, h);
    return {static_cast<int>(x), static_cast<int>(y), static_cast<int>(w), static_cast<int>(h)};
}

int parse_size(const py::object& size) {
    const auto v = as_int(size);
    if (!v || *v < 1 || *v > kMaxSize) fail("size must be an integer between 1 and " + std::to_string(kMaxSize) + ", got " + repr_of(size));
    return static_cast<int>(*v);
}

// Three real numbers (a tuple, a list, an array), finite as float32.
Triple parse_triple(const py::object& o, const char* name) {
    const std::string bad = std::string(name) + " must be three finite numbers, got " + repr_of(o);
    if (py::isinstance<py::str>(o) || py::isinstance<py::bytes>(o) || !PySequence_Check(o.ptr())) fail(bad);
    if (PySequence_Size(o.ptr()) != 3) {
        PyErr_Clear();
        fail(bad);
    }
    Triple t{};
    for (int c = 0; c < 3; ++c) {
        PyObject* item = PySequence_GetItem(o.ptr(), c);
        const double v = item == nullptr ? -1.0 : PyFloat_AsDouble(item);
        Py_XDECREF(item);
        if (PyErr_Occurred()) {
            PyErr_Clear();
            fail(bad);
        }
        if (!std::isfinite(static_cast<float>(v))) fail(bad);
        t[c] = static_cast<float>(v);
    }
    return t;
}

// (x/255 - mean) / std must stay finite in float32 for every x: std above kMinStd, and
// mean / std representable.
void check_norm(const Triple& mean, const Triple& std) {
    for (int c = 0; c < 3; ++c) {
        if (!(std[c] >= kMinStd)) fail("std must be at least 1e-06, got " + repr_of(py::float_(std[c])));
        if (!std::isfinite(static_cast<float>((std::fabs(mean[c]) + 1.0) / std[c]))) fail("mean / std overflows float32");
    }
}

std::string parse_layout(const py::object& layout) {
    if (!py::isinstance<py::str>(layout)) fail("layout must be 'nv12' or 'i420', got " + repr_of(layout));
    return layout.cast<std::string>();
}

// A BGR frame's ROI as a packed-pixel view. Frames whose pixels are not packed (a channel
// slice, a reversed or strided column view) are copied into `copy` first.
mpox::BgrView bgr_roi(const py::object& frame_obj, const py::object& roi,
                      std::vector<std::uint8_t>& copy) {
    const py::array frame = as_array(frame_obj);
    check_uint8(frame, "frame");
    if (frame.ndim() != 3 || frame.shape(2) != 3) {
        fail("frame must be an HxWx3 BGR array, got shape " + shape_of(frame));
    }
    const mpox::Roi r = parse_roi(roi, frame.shape(1), frame.shape(0));
    const py::ssize_t s0 = frame.strides(0), s1 = frame.strides(1), s2 = frame.strides(2);
    const auto* base = static_cast<const std::uint8_t*>(frame.data()) + r.y * s0 + r.x * s1;
    if (s1 == 3 && s2 == 1) return {base, r.w, r.h, s0};
    copy.resize(static_cast<std::size_t>(r.w) * r.h * 3);
    for (int y = 0; y < r.h; ++y) {
        for (int x = 0; x < r.w; ++x) {
            for (int c = 0; c < 3; ++c) {
                copy[(static_cast<std::size_t>(y) * r.w + x) * 3 + c] = base[y * s0 + x * s1 + c * s2];
            }
        }
    }
    return {copy.data(), r.w, r.h, static_cast<std::ptrdiff_t>(r.w) * 3};
}

mpox::Yuv420View yuv_frame(const py::object& frame_obj, const std::string& layout) {
    const py::array frame = as_array(frame_obj);
    check_uint8(frame, "frame");
    if (layout != "nv12" && layout != "i420") fail("layout must be 'nv12' or 'i420', got '" + layout + "'");
    if (frame.ndim() != 2) fail("a YUV 4:2:0 frame must be a 2-D (H*3/2)xW array, got shape " + shape_of(frame));
    const py::ssize_t rows = frame.shape(0), width = frame.shape(1);
    if (rows % 3 != 0 || (rows / 3 * 2) % 2 != 0 || width % 2 != 0) {
        fail("a YUV 4:2:0 frame needs an even width and height (array of H*3/2 rows), got shape " + shape_of(frame));
    }
    const py::ssize_t height = rows / 3 * 2;
    check_sides(width, height);
    if (frame.strides(1) != 1) fail("YUV frame rows must be contiguous (column stride 1)");
    const auto* y = static_cast<const std::uint8_t*>(frame.data());
    const py::ssize_t stride = frame.strides(0);
    if (layout == "nv12") {
        const std::uint8_t* uv = y + height * stride;
        return {y, stride, uv, uv + 1, stride, 2, static_cast<int>(width), static_cast<int>(height)};
    }
    if (stride != width) fail("an I420 frame must be C-contiguous (its chroma planes are packed)");
    const std::uint8_t* u = y + height * width;
    const std::uint8_t* v = u + (height / 2) * (width / 2);
    return {y, stride, u, v, width / 2, 1, static_cast<int>(width), static_cast<int>(height)};
}

// The caller's output array if it fits exactly, else a new one. A wrong `out` is an error, not
// a silent copy: the caller would never see the result.
template <class T>
py::array_t<T> output(const py::object& out, std::vector<py::ssize_t> shape) {
    if (out.is_none()) return py::array_t<T>(shape);
    if (!py::isinstance<py::array>(out)) fail("out must be a numpy array or None, got " + type_of(out));
    const auto o = py::reinterpret_borrow<py::array>(out);
    const bool ok_dtype = o.dtype().is(py::dtype::of<T>());
    bool ok_shape = o.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t i = 0; ok_shape && i < shape.size(); ++i) ok_shape = o.shape(i) == shape[i];
    if (!ok_dtype || !ok_shape) {
        py::array_t<T> want(shape);
        fail("out must be a " + py::str(static_cast<py::object>(want.dtype())).cast<std::string>() +
             " array of shape " + shape_of(want) + ", got " +
             py::str(static_cast<py::object>(o.dtype())).cast<std::string>() + " " + shape_of(o));
    }
    if (!(o.flags() & py::array::c_style)) fail("out must be C-contiguous");
    if (!o.writeable()) fail("out must be writeable");
    return py::reinterpret_borrow<py::array_t<T>>(o);
}

// Every argument arrives as a Python object and is checked here, so a wrong type is the same
// ValueError as a wrong value (pybind11's own conversion would raise TypeError).
using Arg = py::object;

py::array_t<float> preprocess(const Arg& frame, const Arg& roi, const Arg& size_arg, const Arg& mean_arg,
                              const Arg& std_arg, const Arg& out) {
    const int size = parse_size(size_arg);
    const Triple mean = parse_triple(mean_arg, "mean"), std = parse_triple(std_arg, "std");
    check_norm(mean, std);
    std::vector<std::uint8_t> copy;
    const mpox::BgrView view = bgr_roi(frame, roi, copy);
    auto result = output<float>(out, {1, 3, size, size});
    float* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_bgr_f32(view, size, mean.data(), std.data(), dst);
    return result;
}

py::array_t<std::uint8_t> preprocess_u8(const Arg& frame, const Arg& roi, const Arg& size_arg, const Arg& out) {
    const int size = parse_size(size_arg);
    std::vector<std::uint8_t> copy;
    const mpox::BgrView view = bgr_roi(frame, roi, copy);
    auto result = output<std::uint8_t>(out, {size, size, 3});
    std::uint8_t* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_bgr_u8(view, size, dst);
    return result;
}

py::array_t<float> preprocess_yuv(const Arg& frame, const Arg& roi, const Arg& size_arg, const Arg& mean_arg,
                                  const Arg& std_arg, const Arg& layout, const Arg& out) {
    const int size = parse_size(size_arg);
    const Triple mean = parse_triple(mean_arg, "mean"), std = parse_triple(std_arg, "std");
    check_norm(mean, std);
    const mpox::Yuv420View view = yuv_frame(frame, parse_layout(layout));
    const mpox::Roi r = parse_roi(roi, view.width, view.height);
    auto result = output<float>(out, {1, 3, size, size});
    float* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_yuv_f32(view, r, size, mean.data(), std.data(), dst);
    return result;
}

py::array_t<std::uint8_t> preprocess_yuv_u8(const Arg& frame, const Arg& roi, const Arg& size_arg, const Arg& layout,
                                            const Arg& out) {
    const int size = parse_size(size_arg);
    const mpox::Yuv420View view = yuv_frame(frame, parse_layout(layout));
    const mpox::Roi r = parse_roi(roi, view.width, view.height);
    auto result = output<std::uint8_t>(out, {size, size, 3});
    std::uint8_t* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_yuv_u8(view, r, size, dst);
    return result;
}

py::dict frame_quality(const Arg& frame, const Arg& roi) {
    std::vector<std::uint8_t> copy;
    const mpox::BgrView view = bgr_roi(frame, roi, copy);
    mpox::Quality q;
    {
        py::gil_scoped_release nogil;
        q = mpox::frame_quality_bgr(view);
    }
    py::dict d;
    d["sharpness"] = q.sharpness;
    d["brightness"] = q.brightness;
    d["dark_fraction"] = q.dark_fraction;
    d["bright_fraction"] = q.bright_fraction;
    d["skin_fraction"] = q.skin_fraction;
    return d;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Fused camera-frame preprocessing kernels (C++). See edge/preprocess.py.";
    m.attr("DARK_LEVEL") = mpox::kDarkLevel;
    m.attr("BRIGHT_LEVEL") = mpox::kBrightLevel;
    m.def("preprocess", &preprocess, py::arg("frame"), py::arg("roi") = py::none(), py::arg("size") = 224,
          py::arg("mean") = py::cast(kImagenetMean), py::arg("std") = py::cast(kImagenetStd), py::arg("out") = py::none(),
          "uint8 HxWx3 BGR frame -> float32 [1,3,size,size] RGB, area-resized ROI, (x/255-mean)/std.");
    m.def("preprocess_u8", &preprocess_u8, py::arg("frame"), py::arg("roi") = py::none(), py::arg("size") = 224,
          py::arg("out") = py::none(), "uint8 HxWx3 BGR frame -> uint8 [size,size,3] RGB, area-resized ROI.");
    m.def("preprocess_yuv", &preprocess_yuv, py::arg("frame"), py::arg("roi") = py::none(), py::arg("size") = 224,
          py::arg("mean") = py::cast(kImagenetMean), py::arg("std") = py::cast(kImagenetStd), py::arg("layout") = "nv12",
          py::arg("out") = py::none(), "YUV 4:2:0 (nv12|i420) frame -> float32 [1,3,size,size] RGB.");
    m.def("preprocess_yuv_u8", &preprocess_yuv_u8, py::arg("frame"), py::arg("roi") = py::none(),
          py::arg("size") = 224, py::arg("layout") = "nv12", py::arg("out") = py::none(),
          "YUV 4:2:0 (nv12|i420) frame -> uint8 [size,size,3] RGB.");
    m.def("frame_quality", &frame_quality, py::arg("frame"), py::arg("roi") = py::none(),
          "Sharpness, brightness, clipped and skin-coloured fractions of a BGR frame's ROI.");
}
