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
enum XLU_ConfigValueType {
    XLU_STRING,
    XLU_LIST,
};
int xlu_cfg_replace_string(const XLU_Config *cfg, const char *n,
                           char **value_r, int dont_warn);
int xlu_cfg_get_long(const XLU_Config*, const char *n, long *value_r,
                     int dont_warn);
int xlu_cfg_get_bounded_long(const XLU_Config*, const char *n, long min,
                             long max, long *value_r, int dont_warn);
int xlu_cfg_get_list(const XLU_Config*, const char *n,
                     XLU_ConfigList **list_r /* may be 0 */,
                     int *entries_r /* may be 0 */,
                     int dont_warn);
int xlu_cfg_get_list_as_string_list(const XLU_Config *cfg, const char *n,
                                    libxl_string_list *sl, int dont_warn);
const char *xlu_cfg_get_listitem(const XLU_ConfigList*, int entry);
enum XLU_ConfigValueType xlu_cfg_value_type(const XLU_ConfigValue *value);
int xlu_cfg_value_get_string(const XLU_Config *cfg,  XLU_ConfigValue *value,
                             char **value_r, int dont_warn);
int xlu_cfg_value_get_list(const XLU_Config *cfg, XLU_ConfigValue *value,
                           XLU_ConfigList **value_r, int dont_warn);
XLU_ConfigValue *xlu_cfg_get_listitem2(const XLU_ConfigList *list,
                                       int entry);
int xlu_disk_parse(XLU_Config *cfg, int nspecs, const char *const *specs,
                   libxl_device_disk *disk);
int xlu_vif_parse_rate(XLU_Config *cfg, const char *rate,
                       libxl_device_nic *nic);
