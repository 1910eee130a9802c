// The umbrella module: import Adjoint to get the whole public API.
@_exported import AdjointIR
@_exported import AdjointTensor
@_exported import AdjointIO
@_exported import AdjointCompiler
@_exported import AdjointAutodiff
@_exported import AdjointStateful
@_exported import AdjointTraining
@_exported import AdjointPolicies
