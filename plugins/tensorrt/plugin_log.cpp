#include "plugin_log.h"

#include <atomic>
#include <cstdio>

#include "process_tensorrt.h"

namespace attn_deploy::trt {

namespace {
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

char const* severityName(nvinfer1::ILogger::Severity severity) noexcept {
  switch (severity) {
    case nvinfer1::ILogger::Severity::kINTERNAL_ERROR: return "INTERNAL_ERROR";
    case nvinfer1::ILogger::Severity::kERROR: return "ERROR";
    case nvinfer1::ILogger::Severity::kWARNING: return "WARNING";
    case nvinfer1::ILogger::Severity::kINFO: return "INFO";
    case nvinfer1::ILogger::Severity::kVERBOSE: return "VERBOSE";
  }
  return "LOG";
}
}  // namespace

void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
  // TensorRT may call this once per load; the first finder stays (it outlives the library).
  nvinfer1::ILoggerFinder* expected = nullptr;
  gLoggerFinder.compare_exchange_strong(expected, finder);
}

void logMessage(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept {
  try {
    std::string const text = "[attn_deploy plugins] " + message;
    nvinfer1::ILogger* logger = nullptr;
    if (nvinfer1::ILoggerFinder* finder = gLoggerFinder.load()) logger = finder->findLogger();
    if (logger == nullptr) logger = processLogger();
    if (logger != nullptr) {
      logger->log(severity, text.c_str());
    } else if (severity <= nvinfer1::ILogger::Severity::kWARNING) {
      std::fprintf(stderr, "[%s] %s\n", severityName(severity), text.c_str());
    }
  } catch (...) {
    // Logging must never throw out of a noexcept TensorRT call.
  }
}

}  // namespace attn_deploy::trt
