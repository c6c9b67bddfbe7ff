// Logging and error reporting for the plugins; no exception leaves the library.
//
// Messages go to the logger TensorRT hands over through setLoggerFinder() (library loaded by
// TensorRT itself), else to the process's TensorRT logger, else to stderr.
#pragma once

#include <NvInferRuntime.h>

#include <exception>
#include <string>

#include "../core/plugin_fields.h"

namespace attn_deploy::trt {

void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
void logMessage(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;

// Run `body` (a noexcept TensorRT entry point's work); on an exception log it and return
// `onError`. A PluginInputError is a user's mistake and is logged as given; anything else is a bug
// and is logged with the plugin and method it came from.
template <typename R, typename Body>
R guarded(char const* plugin, char const* method, R onError, Body&& body) noexcept {
  try {
    return body();
  } catch (plugin::PluginInputError const& e) {
    logMessage(nvinfer1::ILogger::Severity::kERROR, e.what());
  } catch (std::exception const& e) {
    logMessage(nvinfer1::ILogger::Severity::kINTERNAL_ERROR,
               std::string(plugin) + "::" + method + ": internal error: " + e.what());
  } catch (...) {
    logMessage(nvinfer1::ILogger::Severity::kINTERNAL_ERROR,
               std::string(plugin) + "::" + method + ": internal error (unknown exception)");
  }
  return onError;
}

}  // namespace attn_deploy::trt
