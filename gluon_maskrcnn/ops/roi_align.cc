// Multi-level ROIAlign for CPU as an MXNet extension operator (lib_api, MXNet >= 1.7).
//
// gm_multi_roi_align(rois (K, 5), levels (K,), feat_0, ..., feat_{L-1}) -> (K, C, PH, PW)
//
// Each ROI [batch, x1, y1, x2, y2] is pooled from feature map `levels[k] - min_level` only;
// ROIs with a negative batch index give zeros. The arithmetic of one ROI on one map is
// MXNet's contrib ROIAlign (aligned=False, not position-sensitive) operation for operation,
// so the forward output is bit-identical to it. What differs is the parallelism: contrib's
// CPU backward is one serial loop over every output element; here the sampling grid of
// every ROI is computed once, and the scatter into the feature gradient is split over
// channels, so threads never write to the same element.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"

using namespace mxnet::ext;

namespace {

struct Params {
  int pooled_h = 7, pooled_w = 7, sample_ratio = 2, min_level = 0, num_levels = 1;
  std::vector<float> scales;
};

std::vector<float> ParseFloats(const std::string& text) {
  std::string cleaned = text;
  for (char& ch : cleaned) {
    if (ch == '(' || ch == ')' || ch == '[' || ch == ']' || ch == ',') ch = ' ';
  }
  std::istringstream stream(cleaned);
  std::vector<float> values;
  float v;
  while (stream >> v) values.push_back(v);
  return values;
}

Params ParseParams(const std::unordered_map<std::string, std::string>& attrs) {
  Params p;
  std::vector<float> size = ParseFloats(attrs.at("pooled_size"));
  p.pooled_h = static_cast<int>(size[0]);
  p.pooled_w = static_cast<int>(size.size() > 1 ? size[1] : size[0]);
  p.sample_ratio = std::stoi(attrs.at("sample_ratio"));
  p.min_level = std::stoi(attrs.at("min_level"));
  p.scales = ParseFloats(attrs.at("spatial_scales"));
  p.num_levels = static_cast<int>(p.scales.size());
  return p;
}

// One bilinear sample: four flat offsets into a (H, W) plane and their weights.
struct Sample {
  int64_t pos[4];
  float w[4];
};

// The sampling grid of one ROI on its map, in contrib ROIAlign's order (ph, pw, iy, ix).
// Out-of-map samples get zero weights (and position 0) as in contrib's forward.
int RoiSamples(const float* roi, float scale, int height, int width, const Params& p,
               std::vector<Sample>* samples) {
  const float roi_start_w = roi[1] * scale;
  const float roi_start_h = roi[2] * scale;
  const float roi_end_w = roi[3] * scale;
  const float roi_end_h = roi[4] * scale;
  const float roi_width = std::max(roi_end_w - roi_start_w, 1.0f);
  const float roi_height = std::max(roi_end_h - roi_start_h, 1.0f);
  const float bin_h = roi_height / static_cast<float>(p.pooled_h);
  const float bin_w = roi_width / static_cast<float>(p.pooled_w);
  const int grid_h = p.sample_ratio > 0 ? p.sample_ratio : static_cast<int>(std::ceil(roi_height / p.pooled_h));
  const int grid_w = p.sample_ratio > 0 ? p.sample_ratio : static_cast<int>(std::ceil(roi_width / p.pooled_w));
  samples->resize(static_cast<size_t>(p.pooled_h) * p.pooled_w * grid_h * grid_w);
  size_t n = 0;
  for (int ph = 0; ph < p.pooled_h; ++ph) {
    for (int pw = 0; pw < p.pooled_w; ++pw) {
      for (int iy = 0; iy < grid_h; ++iy) {
        const float yy = roi_start_h + ph * bin_h +
                         static_cast<float>(iy + .5f) * bin_h / static_cast<float>(grid_h);
        for (int ix = 0; ix < grid_w; ++ix) {
          const float xx = roi_start_w + pw * bin_w +
                           static_cast<float>(ix + .5f) * bin_w / static_cast<float>(grid_w);
          Sample& s = (*samples)[n++];
          float x = xx, y = yy;
          // contrib's out-of-map test, written so that NaN coordinates (a diverged model) are
          // out of the map too instead of indexing memory at INT_MIN
          if (!(y >= -1.0 && y <= height && x >= -1.0 && x <= width)) {
            for (int i = 0; i < 4; ++i) { s.pos[i] = 0; s.w[i] = 0; }
            continue;
          }
          if (y <= 0) y = 0;
          if (x <= 0) x = 0;
          int y_low = static_cast<int>(y), x_low = static_cast<int>(x), y_high, x_high;
          if (y_low >= height - 1) {
            y_high = y_low = height - 1;
            y = static_cast<float>(y_low);
          } else {
            y_high = y_low + 1;
          }
          if (x_low >= width - 1) {
            x_high = x_low = width - 1;
            x = static_cast<float>(x_low);
          } else {
            x_high = x_low + 1;
          }
          const float ly = y - y_low, lx = x - x_low;
          const float hy = 1. - ly, hx = 1. - lx;
          s.pos[0] = static_cast<int64_t>(y_low) * width + x_low;
          s.pos[1] = static_cast<int64_t>(y_low) * width + x_high;
          s.pos[2] = static_cast<int64_t>(y_high) * width + x_low;
          s.pos[3] = static_cast<int64_t>(y_high) * width + x_high;
          s.w[0] = hy * hx;
          s.w[1] = hy * lx;
          s.w[2] = ly * hx;
          s.w[3] = ly * lx;
        }
      }
    }
  }
  return grid_h * grid_w;
}

struct RoiPlan {
  int level = -1;  // -1: skipped (negative batch index)
  int batch = 0;
  int count = 1;   // samples per bin
  std::vector<Sample> samples;
};

std::vector<RoiPlan> PlanRois(const std::vector<MXTensor>& in, const Params& p) {
  const int64_t num_rois = in[0].shape[0];
  const float* rois = static_cast<const float*>(in[0].data_ptr);
  const float* levels = static_cast<const float*>(in[1].data_ptr);
  std::vector<RoiPlan> plans(num_rois);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t k = 0; k < num_rois; ++k) {
    const float* roi = rois + k * 5;
    const int batch = static_cast<int>(roi[0]);
    if (batch < 0) continue;
    int level = static_cast<int>(levels[k]) - p.min_level;
    level = std::min(std::max(level, 0), p.num_levels - 1);
    const MXTensor& feat = in[2 + level];
    RoiPlan& plan = plans[k];
    plan.level = level;
    plan.batch = batch;
    plan.count = RoiSamples(roi, p.scales[level], static_cast<int>(feat.shape[2]),
                            static_cast<int>(feat.shape[3]), p, &plan.samples);
  }
  return plans;
}

MXReturnValue ParseAttrs(const std::unordered_map<std::string, std::string>& attrs,
                         int* num_in, int* num_out) {
  *num_in = 2 + ParseParams(attrs).num_levels;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue InferType(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<int>* in_types, std::vector<int>* out_types) {
  for (int t : *in_types) {
    if (t != kFloat32) {
      MX_ERROR_MSG << "gm_multi_roi_align: float32 inputs only";
      return MX_FAIL;
    }
  }
  (*out_types)[0] = kFloat32;
  return MX_SUCCESS;
}

MXReturnValue InferShape(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<std::vector<unsigned int>>* in_shapes,
                         std::vector<std::vector<unsigned int>>* out_shapes) {
  const Params p = ParseParams(attrs);
  const auto& rois = (*in_shapes)[0];
  const auto& feat = (*in_shapes)[2];
  if (rois.size() != 2 || rois[1] != 5 || feat.size() != 4) {
    MX_ERROR_MSG << "gm_multi_roi_align: rois must be (K, 5) and features (B, C, H, W)";
    return MX_FAIL;
  }
  (*out_shapes)[0] = {rois[0], feat[1], static_cast<unsigned>(p.pooled_h),
                      static_cast<unsigned>(p.pooled_w)};
  return MX_SUCCESS;
}

MXReturnValue Forward(const std::unordered_map<std::string, std::string>& attrs,
                      std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                      const OpResource& res) {
  const Params p = ParseParams(attrs);
  const std::vector<RoiPlan> plans = PlanRois(*inputs, p);
  MXTensor& out = (*outputs)[0];
  const int64_t num_rois = out.shape[0], channels = out.shape[1];
  const int64_t bins = static_cast<int64_t>(p.pooled_h) * p.pooled_w;
  float* top = out.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t kc = 0; kc < num_rois * channels; ++kc) {
    const int64_t k = kc / channels, c = kc % channels;
    float* dst = top + kc * bins;
    const RoiPlan& plan = plans[k];
    if (plan.level < 0) {
      std::fill(dst, dst + bins, 0.f);
      continue;
    }
    const MXTensor& feat = (*inputs)[2 + plan.level];
    const int64_t plane = feat.shape[2] * feat.shape[3];
    const float* src = static_cast<const float*>(feat.data_ptr) + (plan.batch * channels + c) * plane;
    const Sample* s = plan.samples.data();
    for (int64_t b = 0; b < bins; ++b) {
      float value = 0;
      for (int i = 0; i < plan.count; ++i, ++s) {
        value += s->w[0] * src[s->pos[0]] + s->w[1] * src[s->pos[1]] +
                 s->w[2] * src[s->pos[2]] + s->w[3] * src[s->pos[3]];
      }
      dst[b] = value / plan.count;
    }
  }
  return MX_SUCCESS;
}

// inputs: out_grad, rois, levels, feats..., output; outputs: d rois, d levels, d feats...
// Only the feature gradients are written.
MXReturnValue Backward(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                       const OpResource& res) {
  const Params p = ParseParams(attrs);
  std::vector<MXTensor> forward_inputs(inputs->begin() + 1, inputs->begin() + 3 + p.num_levels);
  const std::vector<RoiPlan> plans = PlanRois(forward_inputs, p);
  const MXTensor& grad_out = (*inputs)[0];
  const int64_t num_rois = grad_out.shape[0], channels = grad_out.shape[1];
  const int64_t bins = static_cast<int64_t>(p.pooled_h) * p.pooled_w;
  // rois and levels get no gradient: callers stop it (MXNet may pass no buffer for them)
  for (int l = 0; l < p.num_levels; ++l) {
    MXTensor& g = (*outputs)[2 + l];
    float* data = g.data<float>();
    const int64_t size = g.size();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < size; ++i) data[i] = 0.f;
  }
  const float* top = static_cast<const float*>(grad_out.data_ptr);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t k = 0; k < num_rois; ++k) {
      const RoiPlan& plan = plans[k];
      if (plan.level < 0) continue;
      MXTensor& g = (*outputs)[2 + plan.level];
      const int64_t plane = g.shape[2] * g.shape[3];
      float* dst = g.data<float>() + (plan.batch * channels + c) * plane;
      const float* grad_bins = top + (k * channels + c) * bins;
      const Sample* s = plan.samples.data();
      for (int64_t b = 0; b < bins; ++b) {
        const float grad = grad_bins[b] / plan.count;
        for (int i = 0; i < plan.count; ++i, ++s) {
          dst[s->pos[0]] += grad * s->w[0];
          dst[s->pos[1]] += grad * s->w[1];
          dst[s->pos[2]] += grad * s->w[2];
          dst[s->pos[3]] += grad * s->w[3];
        }
      }
    }
  }
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(gm_multi_roi_align)
    .setParseAttrs(ParseAttrs)
    .setInferType(InferType)
    .setInferShape(InferShape)
    .setForward(Forward, "cpu")
    .setBackward(Backward, "cpu");

MXReturnValue initialize(int version) {
  if (version < 10700) {
    MX_ERROR_MSG << "gluon_maskrcnn ops need MXNet >= 1.7, found " << version;
    return MX_FAIL;
  }
  return MX_SUCCESS;
}
