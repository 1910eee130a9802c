import Adjoint
