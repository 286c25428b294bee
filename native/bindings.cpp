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
const Triple kImagenetMean{0.485f, 0.456f, 0.406f};
const Triple kImagenetStd{0.229f, 0.224f, 0.225f};

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

void check_uint8(const py::array& a, const char* name) {
    if (a.dtype().kind() != 'u' || a.itemsize() != 1) {
        fail(std::string(name) + " must be a uint8 array, got dtype " +
             py::str(static_cast<py::object>(a.dtype())).cast<std::string>());
    }
    if (a.size() == 0) fail(std::string(name) + " is empty: shape " + shape_of(a));
}

// roi is None (the whole frame) or any sequence of four integers (x, y, w, h).
mpox::Roi parse_roi(const py::object& roi, long long width, long long height) {
    if (roi.is_none()) return {0, 0, static_cast<int>(width), static_cast<int>(height)};
    std::array<long long, 4> v{};
    try {
        const auto seq = roi.cast<py::sequence>();
        if (py::len(seq) != 4) fail("roi must be (x, y, w, h), got " + py::repr(roi).cast<std::string>());
        for (int i = 0; i < 4; ++i) v[i] = py::int_(seq[i].attr("__index__")()).cast<long long>();
    } catch (const py::error_already_set&) {
        fail("roi must be four integers (x, y, w, h), got " + py::repr(roi).cast<std::string>());
    } catch (const py::cast_error&) {
        fail("roi must be four integers (x, y, w, h), got " + py::repr(roi).cast<std::string>());
    }
    const auto [x, y, w, h] = v;
    if (w <= 0 || h <= 0) fail("roi width and height must be positive, got w=" + std::to_string(w) + ", h=" + std::to_string(h));
    // Compared without adding: x + w overflows for huge values and would pass the check.
    if (x < 0 || y < 0 || w > width || h > height || x > width - w || y > height - h) {
        fail("roi (x=" + std::to_string(x) + ", y=" + std::to_string(y) + ", w=" + std::to_string(w) +
             ", h=" + std::to_string(h) + ") is outside the " + std::to_string(width) + "x" +
             std::to_string(height) + " frame");
    }
    return {static_cast<int>(x), static_cast<int>(y), static_cast<int>(w), static_cast<int>(h)};
}

void check_size(int size) {
    if (size < 1 || size > kMaxSize) fail("size must be between 1 and " + std::to_string(kMaxSize) + ", got " + std::to_string(size));
}

void check_norm(const Triple& mean, const Triple& std) {
    for (int c = 0; c < 3; ++c) {
        if (!std::isfinite(mean[c])) fail("mean must be finite");
        if (!std::isfinite(std[c]) || std[c] == 0.f) fail("std must be finite and non-zero");
    }
}

// A BGR frame's ROI as a packed-pixel view. Frames whose pixels are not packed (a channel
// slice, a reversed or strided column view) are copied into `copy` first.
mpox::BgrView bgr_roi(const py::array& frame, const py::object& roi,
                      std::vector<std::uint8_t>& copy) {
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

mpox::Yuv420View yuv_frame(const py::array& frame, const std::string& layout) {
    check_uint8(frame, "frame");
    if (layout != "nv12" && layout != "i420") fail("layout must be 'nv12' or 'i420', got '" + layout + "'");
    if (frame.ndim() != 2) fail("a YUV 4:2:0 frame must be a 2-D (H*3/2)xW array, got shape " + shape_of(frame));
    const py::ssize_t rows = frame.shape(0), width = frame.shape(1);
    if (rows % 3 != 0 || (rows / 3 * 2) % 2 != 0 || width % 2 != 0) {
        fail("a YUV 4:2:0 frame needs an even width and height (array of H*3/2 rows), got shape " + shape_of(frame));
    }
    const py::ssize_t height = rows / 3 * 2;
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
py::array_t<T> output(const std::optional<py::array>& out, std::vector<py::ssize_t> shape) {
    if (!out) return py::array_t<T>(shape);
    const py::array& o = *out;
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

using OptRoi = py::object;
using OptOut = std::optional<py::array>;

py::array_t<float> preprocess(const py::array& frame, const OptRoi& roi, int size, const Triple& mean,
                              const Triple& std, const OptOut& out) {
    check_size(size);
    check_norm(mean, std);
    std::vector<std::uint8_t> copy;
    const mpox::BgrView view = bgr_roi(frame, roi, copy);
    auto result = output<float>(out, {1, 3, size, size});
    float* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_bgr_f32(view, size, mean.data(), std.data(), dst);
    return result;
}

py::array_t<std::uint8_t> preprocess_u8(const py::array& frame, const OptRoi& roi, int size, const OptOut& out) {
    check_size(size);
    std::vector<std::uint8_t> copy;
    const mpox::BgrView view = bgr_roi(frame, roi, copy);
    auto result = output<std::uint8_t>(out, {size, size, 3});
    std::uint8_t* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_bgr_u8(view, size, dst);
    return result;
}

py::array_t<float> preprocess_yuv(const py::array& frame, const OptRoi& roi, int size, const Triple& mean,
                                  const Triple& std, const std::string& layout, const OptOut& out) {
    check_size(size);
    check_norm(mean, std);
    const mpox::Yuv420View view = yuv_frame(frame, layout);
    const mpox::Roi r = parse_roi(roi, view.width, view.height);
    auto result = output<float>(out, {1, 3, size, size});
    float* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_yuv_f32(view, r, size, mean.data(), std.data(), dst);
    return result;
}

py::array_t<std::uint8_t> preprocess_yuv_u8(const py::array& frame, const OptRoi& roi, int size,
                                            const std::string& layout, const OptOut& out) {
    check_size(size);
    const mpox::Yuv420View view = yuv_frame(frame, layout);
    const mpox::Roi r = parse_roi(roi, view.width, view.height);
    auto result = output<std::uint8_t>(out, {size, size, 3});
    std::uint8_t* dst = result.mutable_data();
    py::gil_scoped_release nogil;
    mpox::preprocess_yuv_u8(view, r, size, dst);
    return result;
}

py::dict frame_quality(const py::array& frame, const OptRoi& roi) {
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
          py::arg("mean") = kImagenetMean, py::arg("std") = kImagenetStd, py::arg("out") = py::none(),
          "uint8 HxWx3 BGR frame -> float32 [1,3,size,size] RGB, area-resized ROI, (x/255-mean)/std.");
    m.def("preprocess_u8", &preprocess_u8, py::arg("frame"), py::arg("roi") = py::none(), py::arg("size") = 224,
          py::arg("out") = py::none(), "uint8 HxWx3 BGR frame -> uint8 [size,size,3] RGB, area-resized ROI.");
    m.def("preprocess_yuv", &preprocess_yuv, py::arg("frame"), py::arg("roi") = py::none(), py::arg("size") = 224,
          py::arg("mean") = kImagenetMean, py::arg("std") = kImagenetStd, py::arg("layout") = "nv12",
          py::arg("out") = py::none(), "YUV 4:2:0 (nv12|i420) frame -> float32 [1,3,size,size] RGB.");
    m.def("preprocess_yuv_u8", &preprocess_yuv_u8, py::arg("frame"), py::arg("roi") = py::none(),
          py::arg("size") = 224, py::arg("layout") = "nv12", py::arg("out") = py::none(),
          "YUV 4:2:0 (nv12|i420) frame -> uint8 [size,size,3] RGB.");
    m.def("frame_quality", &frame_quality, py::arg("frame"), py::arg("roi") = py::none(),
          "Sharpness, brightness, clipped and skin-coloured fractions of a BGR frame's ROI.");
}
