/* libxlutil (libxlutil.h), trimmed: xl.cfg and disk-spec parsing. */
typedef struct XLU_Config XLU_Config;
typedef struct XLU_ConfigList XLU_ConfigList;
typedef struct XLU_ConfigValue XLU_ConfigValue;

XLU_Config *xlu_cfg_init(FILE *report, const char *report_filename);
int xlu_cfg_readfile(XLU_Config *, const char *real_filename);
int xlu_cfg_readdata(XLU_Config *, const char *data, int length);
void xlu_cfg_destroy(XLU_Config *);
int xlu_cfg_get_string(const XLU_Config *, const char *n, const char **value_r,
                       int dont_warn);
