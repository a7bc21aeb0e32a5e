/* The program each layercheck_<layer> executable is: CMake links the layer's whole archive into
 * it with only the layer's allowed dependencies, so a reference to a layer above (or a library
 * the layer may not use) is an undefined symbol and the build fails. It is never run. */
int main(void) { return 0; }
